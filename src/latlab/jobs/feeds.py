"""What a live client is sent: stored results replayed, then the hub's events, no gap, no dup.

The order of steps is what makes it exact. A feed subscribes to the hub first and only then
reads the store. The writer publishes results after they are committed, so a result is either
in the store when the feed reads it, or published after the subscription, hence buffered:
none is missed. One can be both (committed before the read, published after the
subscription), so live results at or below the last ``seq`` sent are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from latlab.exporters.base import StateChange
from latlab.jobs.kinds.probe_stats import results_of
from latlab.jobs.live import PROBE, Deleted, LiveEvent, LiveHub, Overflow, Subscription
from latlab.storage import JobNotFound, JobRecord, ProbeResult, Store
from latlab.storage.pages import pages

REPLAY_PAGE = 500
# Live events arriving within this long go out in one write; a chart redraws no faster.
FEED_LINGER_S = 0.05


@dataclass(frozen=True, slots=True)
class Ready:
    """The feed is subscribed: nothing published from now on can be missed."""


READY = Ready()
FeedEvent = LiveEvent | Overflow | Ready


def change_of(job: JobRecord) -> StateChange:
    return StateChange(job.kind, job.id, job.state, job.error, job.updated_at)


def nothing_after(job: JobRecord, seq: int, stored: int | None = None) -> bool:
    """Whether a client that got results up to ``seq`` has had all there will ever be: the
    job is over and has ``stored`` results (its checkpoint's ``done`` if not given).

    A browser's EventSource reconnects to a stream that ended; answering such a reconnect
    with 204 is what tells it to stop.
    """
    done = int(job.progress.get("done", 0)) if stored is None else stored
    return job.state.ended and done <= seq + 1


def ends_job_feed(event: FeedEvent) -> bool:
    """After this event a single job's feed has nothing more to say."""
    if isinstance(event, StateChange):
        return event.state.ended
    return isinstance(event, Overflow | Deleted)


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    """Which results an experiment's feed sends: all of them (``location`` None), or those
    of one location (``location``), replayed from the job that stores them (``series``,
    the experiment itself for an experiment of one series)."""

    series: tuple[str, int] | None = None
    location: str | None = None
    numbered: bool = True  # results have one seq order: a replay and a resume are exact

    def wants(self, event: FeedEvent) -> bool:
        if self.location is None or not isinstance(event, ProbeResult):
            return True
        return getattr(event, "location", None) == self.location

    def number(self, event: FeedEvent) -> int | None:
        return result_seq(event) if self.numbered else None


async def experiment_feed(
    store: Store,
    hub: LiveHub,
    experiment_id: int,
    after: int | None = None,
    page: int = REPLAY_PAGE,
    linger_s: float = 0.0,
    only: SeriesFilter = SeriesFilter(),
) -> AsyncGenerator[list[FeedEvent], None]:
    """One experiment's results and state changes, in batches, ending after a terminal state.

    ``after=None`` starts live; ``after=N`` first replays the stored results with a ``seq``
    above ``N`` (``-1``: all of them), a page per batch. An experiment already over gets its
    replay and its final state, then the feed ends. Live batches gather what arrives within
    ``linger_s``.
    """
    with hub.subscribe((PROBE, experiment_id)) as live:
        yield [READY]
        try:
            job = await store.get_job(PROBE, experiment_id)
        except JobNotFound:  # deleted since the route looked it up
            yield [Deleted(PROBE, experiment_id)]
            return
        last = -1 if after is None else after
        if after is not None:
            series = only.series or (PROBE, experiment_id)
            async for results in _replay(store, live, series, after + 1, page):
                yield list(results)
                last = results[-1].seq
        if job.state.ended and not live.overflowed:
            # Results published between the subscription and the read above, then the end.
            ended = [e for e in live.take() if only.wants(e) and _after(only, e, last)]
            yield [*ended, change_of(job)]
            return
        async for events in unseen(live, last, linger_s, only.number, only.wants):
            yield events


def _after(only: SeriesFilter, event: FeedEvent, last: int) -> bool:
    position = only.number(event)
    return isinstance(event, ProbeResult) and (position is None or position > last)


async def _replay(
    store: Store, live: Subscription, series: tuple[str, int], first: int, page: int
) -> AsyncIterator[list[ProbeResult]]:
    """Stored results from ``seq == first`` on, a page at a time.

    Stops early once the live buffer overflowed: the client then gets ``overflow`` and
    reconnects from the last result it got, so reading on would be wasted.
    """
    kind, job_id = series
    async with aclosing(pages(results_of(store, kind), job_id, first, page)) as stored:
        async for results in stored:
            if live.overflowed:
                return
            yield results


def result_seq(event: FeedEvent) -> int | None:
    return event.seq if isinstance(event, ProbeResult) else None


async def unseen(
    live: Subscription,
    last: int,
    linger_s: float,
    number: Callable[[FeedEvent], int | None] = result_seq,
    wants: Callable[[FeedEvent], bool] = lambda event: True,
) -> AsyncIterator[list[FeedEvent]]:
    """The live batches, without the numbered events (results by ``seq``) at or below
    ``last`` (replayed already) and those not ``wants``-ed, cut after the event that ends
    the feed."""
    while batch := await live.batch(linger_s):
        fresh: list[FeedEvent] = []
        for event in batch:
            if not wants(event):
                continue
            position = number(event)
            if position is not None:
                if position <= last:
                    continue
                last = position
            fresh.append(event)
            if ends_job_feed(event):
                yield fresh
                return
        if fresh:
            yield fresh


async def jobs_feed(
    hub: LiveHub, *, results: bool = False, linger_s: float = 0.0
) -> AsyncGenerator[list[FeedEvent], None]:
    """Every job's state changes (and deletions), with ``results`` every experiment's
    results, in batches; live only, it never ends on its own (an overflow ends it)."""
    with hub.subscribe(results=results) as live:
        yield [READY]
        while batch := await live.batch(linger_s):
            yield list(batch)
