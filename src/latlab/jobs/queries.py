"""Read paths over experiments, shared by the API's routers and the dashboard.

Routers read through these, never the store directly, so both show the same thing the same
way (an unknown id is :class:`~latlab.storage.JobNotFound` here for both).
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from latlab.jobs.feeds import FEED_LINGER_S, FeedEvent, experiment_feed, nothing_after
from latlab.jobs.kinds.bot import KIND as BOT
from latlab.jobs.kinds.probe import KIND
from latlab.jobs.kinds.probe_stats import MinuteWindow, experiment_stats
from latlab.jobs.live import LiveHub
from latlab.measure.stats import LatencyStats
from latlab.storage import JobRecord, JobState, Page, ProbeResult, Store
from latlab.storage.pages import pages


class BadWindow(ValueError):
    """A window that cannot be answered: out of range, or ``to`` not after ``from``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # minutes are counted from the Unix epoch
_LATEST = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)  # rounding up must stay a datetime


@dataclass(frozen=True, slots=True)
class StatsWindow:
    """A time window rounded out to whole minutes, as it is answered."""

    start: datetime
    end: datetime

    @classmethod
    def rounded_out(cls, start: datetime | None, end: datetime | None) -> StatsWindow | None:
        if start is None and end is None:
            return None
        first_s = 0 if start is None else math.floor(_seconds("from", start) / 60) * 60
        end_s = datetime.now(UTC).timestamp() if end is None else _seconds("to", end)
        last_s = math.ceil(end_s / 60) * 60
        if last_s <= first_s:
            raise BadWindow("to", "'to' must be after 'from'")
        return cls(datetime.fromtimestamp(first_s, UTC), datetime.fromtimestamp(last_s, UTC))

    def minutes(self) -> MinuteWindow:
        first = int(self.start.timestamp()) // 60
        return MinuteWindow(first, int(self.end.timestamp()) // 60 - 1)


def _seconds(field: str, moment: datetime) -> float:
    """Seconds since the epoch of a bound; naive times are UTC, as the API documents."""
    out_of_range = BadWindow(field, f"'{field}' must be between 1970-01-01 and 9999-12-31")
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # its offset takes it past year 1 or 9999
        raise out_of_range from exc
    if not _EARLIEST <= utc <= _LATEST:
        raise out_of_range
    return utc.timestamp()


class JobQueries:
    """What every kind's routes read: one job, a page of jobs."""

    kind = ""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, job_id: int) -> JobRecord:
        return await self._store.get_job(self.kind, job_id)

    async def page(
        self, state: JobState | None, *, offset: int = 0, limit: int | None = None
    ) -> Page[JobRecord]:
        states = None if state is None else {state}
        return await self._store.list_jobs(self.kind, states=states, offset=offset, limit=limit)

    async def pages(self, page_size: int) -> AsyncIterator[list[JobRecord]]:
        """Every job of the kind by ascending id, ``page_size`` at a time (no empty page)."""
        offset = 0
        while True:
            page = await self.page(None, offset=offset, limit=page_size)
            if page.items:
                yield page.items
            if len(page.items) < page_size:
                return
            offset += len(page.items)


class BotQueries(JobQueries):
    kind = BOT


class ExperimentQueries(JobQueries):
    kind = KIND

    async def results(self, experiment_id: int, *, offset: int, limit: int) -> Page[ProbeResult]:
        job = await self.get(experiment_id)
        items = await self._store.probe_results.list(job.id, offset=offset, limit=limit)
        return Page(items, await self._store.probe_results.count(job.id))

    def results_from(
        self, experiment_id: int, first_seq: int, page_size: int
    ) -> AsyncIterator[list[ProbeResult]]:
        """The results from ``first_seq`` on, page by page (exports)."""
        return pages(self._store.probe_results, experiment_id, first_seq, page_size)

    async def feed(
        self, hub: LiveHub, experiment_id: int, after: int | None, *, reconnect: bool = False
    ) -> AsyncGenerator[list[FeedEvent], None] | None:
        """The live feed of an experiment (see :func:`~latlab.jobs.feeds.experiment_feed`),
        or None for a ``reconnect`` after the experiment's last result and end; raises
        :class:`JobNotFound` before the feed starts for an unknown id."""
        job = await self.get(experiment_id)
        if reconnect and after is not None and nothing_after(job, after):
            return None
        return experiment_feed(self._store, hub, job.id, after, linger_s=FEED_LINGER_S)

    async def stats(self, experiment_id: int, window: StatsWindow | None = None) -> LatencyStats:
        """Constant time in the number of results: stored histograms plus a short tail."""
        job = await self.get(experiment_id)
        minutes = None if window is None else window.minutes()
        return (await experiment_stats(self._store, job.id, minutes)).stats()


async def count_jobs(store: Store, kinds: Sequence[str]) -> dict[tuple[str, str], int]:
    """Jobs by ``(kind, state)``, every pair included (0 when none): a count each."""
    counts: dict[tuple[str, str], int] = {}
    for kind in kinds:
        for state in JobState:
            page = await store.list_jobs(kind, states={state}, limit=1)
            counts[kind, state.value] = page.total
    return counts
