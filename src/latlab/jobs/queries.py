"""Read paths over experiments, shared by the API's routers and the dashboard.

Routers read through these, never the store directly, so both show the same thing the same
way (an unknown id is :class:`~latlab.storage.JobNotFound` here for both).
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime

from latlab.jobs.feeds import (
    FEED_LINGER_S,
    FeedEvent,
    SeriesFilter,
    experiment_feed,
    nothing_after,
)
from latlab.jobs.kinds.bot import KIND as BOT
from latlab.jobs.kinds.probe import KIND
from latlab.jobs.kinds.probe_sites import SITES
from latlab.jobs.kinds.probe_stats import (
    SITE_KIND,
    MinuteWindow,
    experiment_stats,
    minute_histograms,
    results_of,
)
from latlab.jobs.live import LiveHub
from latlab.measure.stats import LatencyHistogram, LatencyStats
from latlab.storage import JobRecord, JobState, Page, ProbeResult, Store
from latlab.storage.pages import pages


class BadQuery(ValueError):
    """A query parameter that cannot be answered, named by ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class BadWindow(BadQuery):
    """A window that cannot be answered: out of range, or ``to`` not after ``from``."""


SeriesKey = tuple[str, int]  # (kind, job id) of a job that stores probe results


def series_of(job: JobRecord, location: str | None = None) -> list[tuple[str, SeriesKey]]:
    """Where an experiment's results are: its own (location ""), or those of its series at
    each location in the order of its ``locations`` (none before its first start); only the
    one at ``location`` if given."""
    locations = [str(where) for where in job.spec.get("locations") or ()]
    if location is not None and location not in locations:
        has = f"its locations are {', '.join(locations)}" if locations else "it has none"
        raise BadQuery("location", f"experiment {job.id} has no location {location!r}: {has}")
    if not locations:
        return [("", (KIND, job.id))]
    pairs = zip(locations, SITES.ids(job), strict=False)
    return [(where, (SITE_KIND, site)) for where, site in pairs if location in (None, where)]


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


@dataclass(frozen=True, slots=True)
class ExperimentFeed:
    """An experiment's feed, and whether its results have one ``seq`` order to resume by."""

    events: AsyncGenerator[list[FeedEvent], None]
    numbered: bool


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

    async def results(
        self, experiment_id: int, *, offset: int, limit: int, location: str | None = None
    ) -> Page[ProbeResult]:
        """A page of the results by ``seq``, those of several locations one location after
        the other (in the order of ``locations``), or only those at ``location``.

        The page holds what was counted (a result stored since is on a later read). Across
        locations, offsets shift while the experiment runs (a location's new results come
        before the next location's): a client following a running one reads each location
        on its own, whose pages are stable."""
        job = await self.get(experiment_id)
        streams = [(results_of(self._store, kind), i) for _, (kind, i) in series_of(job, location)]
        counts = [await stream.count(job_id) for stream, job_id in streams]
        items: list[ProbeResult] = []
        skip = offset
        for (stream, job_id), count in zip(streams, counts, strict=True):
            if skip >= count:
                skip -= count
                continue
            if len(items) >= limit:
                break
            take = min(limit - len(items), count - skip)
            items += await stream.list(job_id, offset=skip, limit=take)
            skip = 0
        return Page(items, sum(counts))

    async def results_from(
        self, job: JobRecord, page_size: int
    ) -> AsyncGenerator[list[ProbeResult], None]:
        """Every result, page by page, location after location (exports)."""
        for _, (kind, job_id) in series_of(job):
            async with aclosing(pages(results_of(self._store, kind), job_id, 0, page_size)) as all_:
                async for page in all_:
                    yield page

    async def feed(
        self,
        hub: LiveHub,
        experiment_id: int,
        after: int | None,
        *,
        reconnect: bool = False,
        location: str | None = None,
    ) -> ExperimentFeed | None:
        """The live feed of an experiment (see :func:`~latlab.jobs.feeds.experiment_feed`),
        or None for a ``reconnect`` after the experiment's last result and end; raises
        :class:`JobNotFound` before the feed starts for an unknown id, :class:`BadQuery` for
        a location it does not have, or a resume (``after``) of the results of several
        locations, which share no one ``seq`` order."""
        job = await self.get(experiment_id)
        only = _series_filter(job, location)
        if reconnect and not only.numbered and job.state.ended:
            return None  # its last event (the end) carried an id only to say so
        if after is not None and not only.numbered:
            message = "resuming needs ?location=: each location numbers its own results"
            raise BadQuery("after", message)
        if reconnect and after is not None and nothing_after(job, after, await self._count(only)):
            return None
        events = experiment_feed(self._store, hub, job.id, after, linger_s=FEED_LINGER_S, only=only)
        return ExperimentFeed(events, only.numbered)

    async def _count(self, only: SeriesFilter) -> int | None:
        """The stored results of one location's series (None: the experiment's own count)."""
        if only.location is None or only.series is None:
            return None
        kind, job_id = only.series
        return await results_of(self._store, kind).count(job_id)

    async def recent(self, job: JobRecord, limit: int) -> list[ProbeResult]:
        """The last ``limit`` results by start time, oldest first (of every location)."""
        tails: list[ProbeResult] = []
        for _, (kind, job_id) in series_of(job):
            stream = results_of(self._store, kind)
            count = await stream.count(job_id)
            tails += await stream.list(job_id, offset=max(0, count - limit), limit=limit)
        tails.sort(key=lambda result: result.timestamp)
        return tails[-limit:]

    async def stats(
        self, experiment_id: int, window: StatsWindow | None = None, location: str | None = None
    ) -> tuple[LatencyStats, dict[str, LatencyStats]]:
        """The stats of every result (or those at ``location``), and of each location's for
        an experiment run at several. Constant time in the number of results: stored
        histograms plus a short tail each, merged bucket for bucket."""
        return await self.stats_of(await self.get(experiment_id), window, location)

    async def stats_of(
        self, job: JobRecord, window: StatsWindow | None = None, location: str | None = None
    ) -> tuple[LatencyStats, dict[str, LatencyStats]]:
        """:meth:`stats` of an experiment already read."""
        merged, by_location = await self.histograms(job, window, location)
        stats = {where: histogram.stats() for where, histogram in by_location.items()}
        return merged.stats(), stats

    async def histograms(
        self, job: JobRecord, window: StatsWindow | None = None, location: str | None = None
    ) -> tuple[LatencyHistogram, dict[str, LatencyHistogram]]:
        """The histogram of every result (or those at ``location``), and each location's."""
        minutes = None if window is None else window.minutes()
        found = series_of(job, location)
        histograms = [
            (where, await experiment_stats(self._store, job_id, minutes, kind))
            for where, (kind, job_id) in found
        ]
        by_location = {where: histogram for where, histogram in histograms if where}
        if len(histograms) == 1:  # one series (an experiment's own): nothing to merge
            return histograms[0][1], by_location
        merged = LatencyHistogram()
        for _, histogram in histograms:
            merged.merge(histogram)
        return merged, by_location

    async def bands(
        self, job: JobRecord, location: str | None = None
    ) -> list[tuple[datetime, LatencyStats]]:
        """Each minute that holds a probe, oldest first, with the stats of its probes (of
        every location, merged, or those at ``location``): SmokePing's bands."""
        merged: dict[int, LatencyHistogram] = {}
        for _, (kind, job_id) in series_of(job, location):
            for minute, histogram in (await minute_histograms(self._store, job_id, kind)).items():
                merged.setdefault(minute, LatencyHistogram()).merge(histogram)
        return [
            (datetime.fromtimestamp(minute * 60, UTC), merged[minute].stats())
            for minute in sorted(merged)
        ]


def _series_filter(job: JobRecord, location: str | None) -> SeriesFilter:
    found = series_of(job, location)
    if location is not None:
        return SeriesFilter(found[0][1] if found else None, location)
    return SeriesFilter(numbered=not job.spec.get("locations"))


async def count_jobs(store: Store, kinds: Sequence[str]) -> dict[tuple[str, str], int]:
    """Jobs by ``(kind, state)``, every pair included (0 when none): a count each."""
    counts: dict[tuple[str, str], int] = {}
    for kind in kinds:
        for state in JobState:
            page = await store.list_jobs(kind, states={state}, limit=1)
            counts[kind, state.value] = page.total
    return counts
