"""A load run's live feed: its stored seconds replayed, then the hub's, no gap, no duplicate.

The same order of steps as an experiment's feed (:mod:`latlab.jobs.feeds`): subscribe first,
then read the store, and skip live seconds at or below the last one sent. A load run's
runner publishes a second only after its checkpoint is committed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from latlab.exporters.base import LoadSecond, LoadTags
from latlab.jobs.feeds import READY, FeedEvent, change_of, unseen
from latlab.jobs.kinds.load_stats import stored_second
from latlab.jobs.live import LOAD, Deleted, LiveHub, Subscription
from latlab.measure.load.seconds import SecondStats
from latlab.measure.request import Url
from latlab.storage import JobNotFound, JobRecord, Store

REPLAY_SECONDS = 500
# Progress keys a load run's checkpoint keeps (see load.py).
SECONDS_KEY = "seconds"  # how many seconds are stored
COUNTING_FROM_KEY = "counting_from"  # epoch seconds at which second 0 began


def load_tags(url: Url, method: str) -> LoadTags:
    """How exporters label a run's points: the URL's path without its query."""
    return LoadTags(url.host, url.port, url.target.partition("?")[0], method)


def load_second_of(run_id: int, stats: SecondStats, counting_from_s: float) -> LoadSecond:
    return load_second_from_row(run_id, stats.row(), counting_from_s)


def load_second_from_row(
    run_id: int, row: dict[str, Any], counting_from_s: float, began_s: float | None = None
) -> LoadSecond:
    """``began_s``: when the second began, if stored; else from the latest stretch's start
    (which is only right for the seconds of that stretch)."""
    if began_s is not None:
        at = datetime.fromtimestamp(began_s, UTC)
    else:
        at = datetime.fromtimestamp(counting_from_s, UTC) + timedelta(seconds=row["second"])
    return LoadSecond(
        run_id=run_id,
        second=row["second"],
        at=at,
        requests=row["requests"],
        errors=row["errors"],
        rps=row["rps"],
        p50_ms=row["p50_ms"],
        p90_ms=row["p90_ms"],
        p99_ms=row["p99_ms"],
        max_ms=row["max_ms"],
    )


def seconds_stored(job: JobRecord) -> int:
    return int(job.progress.get(SECONDS_KEY, 0))


def nothing_after_second(job: JobRecord, second: int) -> bool:
    """Whether a client that got seconds up to ``second`` has had all there will ever be."""
    return job.state.ended and seconds_stored(job) <= second + 1


async def load_run_feed(
    store: Store, hub: LiveHub, run_id: int, after: int | None = None, linger_s: float = 0.0
) -> AsyncGenerator[list[FeedEvent], None]:
    """One load run's seconds and state changes, in batches, ending after a terminal state;
    ``after=N`` first replays the stored seconds above ``N`` (``-1``: all)."""
    with hub.subscribe((LOAD, run_id)) as live:
        yield [READY]
        try:
            job = await store.get_job(LOAD, run_id)
        except JobNotFound:  # deleted since the route looked it up
            yield [Deleted(LOAD, run_id)]
            return
        last = -1 if after is None else after
        if after is not None:
            async for seconds in _replay(store, live, job, after + 1):
                yield list(seconds)
                last = seconds[-1].second
        if job.state.ended and not live.overflowed:
            ended = [e for e in live.take() if isinstance(e, LoadSecond) and e.second > last]
            yield [*ended, change_of(job)]
            return
        async for events in unseen(live, last, linger_s, _second_number):
            yield events


async def _replay(
    store: Store, live: Subscription, job: JobRecord, first: int
) -> AsyncIterator[list[LoadSecond]]:
    counting_from_s = float(job.progress.get(COUNTING_FROM_KEY, 0.0))
    stored = seconds_stored(job)
    while first < stored and not live.overflowed:
        last = min(first + REPLAY_SECONDS, stored) - 1
        payloads = await store.histograms.read(LOAD, job.id, first, last)
        seconds = []
        for payload in payloads.values():
            row, began_s = stored_second(payload)
            seconds.append(load_second_from_row(job.id, row, counting_from_s, began_s))
        if seconds:
            yield seconds
        first = last + 1


def _second_number(event: FeedEvent) -> int | None:
    return event.second if isinstance(event, LoadSecond) else None
