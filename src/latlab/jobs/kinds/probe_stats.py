"""An experiment's stats without loading its rows: stored histograms plus a short tail.

Beside its results, an experiment stores mergeable histograms (``measure.stats``): one for
the whole run (``TOTAL_BUCKET``, which also says through which ``seq`` the histograms
count) and one per minute of probe start times. They are written in the same transaction
as a result, every ``FLUSH_RESULTS`` results, so the results they do not count yet (the
tail) are few. Stats are the stored histograms plus a recount of
that tail: constant time whatever the number of results, exact, and true after a crash,
since histograms and results commit together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from latlab.measure.stats import LatencyHistogram
from latlab.storage import (
    TOTAL_BUCKET,
    HistogramUpdate,
    ProbeResult,
    ResultStream,
    SiteResult,
    Store,
)
from latlab.storage.pages import pages

KIND = "probe"
SITE_KIND = SiteResult.kind  # a series of an experiment run at several locations, one each
FLUSH_RESULTS = 200  # a tail this long costs ~5 ms to recount (bench/stats_query.py)
_PAGE = 5000
_THREAD_ABOVE = 64  # merging more stored histograms than this runs off the event loop


def minute_of(result: ProbeResult) -> int:
    """The minute (since the Unix epoch) in which the probe started."""
    return int(result.timestamp.timestamp() // 60)


@dataclass(frozen=True, slots=True)
class MinuteWindow:
    """Minutes ``first`` up to ``last``, both included."""

    first: int
    last: int

    def holds(self, result: ProbeResult) -> bool:
        return self.first <= minute_of(result) <= self.last


def results_of(store: Store, kind: str) -> ResultStream[Any]:
    """Where a job of ``kind`` (an experiment, or one of its series) keeps its results."""
    return store.site_results if kind == SITE_KIND else store.probe_results


async def _stored_total(store: Store, kind: str, job_id: int) -> tuple[LatencyHistogram, int]:
    """The stored whole-run histogram and the first ``seq`` it does not count."""
    histogram = LatencyHistogram()
    stored = await store.histograms.read(kind, job_id, TOTAL_BUCKET, TOTAL_BUCKET)
    return histogram, _through_seq(stored.get(TOTAL_BUCKET), into=histogram)


async def _tail(store: Store, kind: str, job_id: int, from_seq: int) -> list[ProbeResult]:
    """The results from ``from_seq`` on (a few, unless flushes failed)."""
    stored = pages(results_of(store, kind), job_id, from_seq, _PAGE)
    return [result async for page in stored for result in page]


def _each_merged(stored: dict[int, str]) -> dict[int, LatencyHistogram]:
    return {bucket: _merged([payload]) for bucket, payload in stored.items()}


def _merged(payloads: Sequence[str]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for payload in payloads:
        histogram.add_payload(payload)
    return histogram


async def experiment_stats(
    store: Store, job_id: int, window: MinuteWindow | None = None, kind: str = KIND
) -> LatencyHistogram:
    """Every result of the experiment or series (or those started within ``window``), as
    one histogram."""
    if window is None:
        histogram, through_seq = await _stored_total(store, kind, job_id)
    else:
        histogram, through_seq = await _window(store, kind, job_id, window)
    for result in await _tail(store, kind, job_id, through_seq):
        if window is None or window.holds(result):
            histogram.record(result.latency_ms, result.error)
    return histogram


async def _window(
    store: Store, kind: str, job_id: int, window: MinuteWindow
) -> tuple[LatencyHistogram, int]:
    """The stored minutes of ``window`` merged, and through which ``seq`` they count."""
    stored, through_seq = await _stored_minutes(store, kind, job_id, window)
    payloads = list(stored.values())
    if len(payloads) > _THREAD_ABOVE:
        return await asyncio.to_thread(_merged, payloads), through_seq
    return _merged(payloads), through_seq


async def _stored_minutes(
    store: Store, kind: str, job_id: int, window: MinuteWindow
) -> tuple[dict[int, str], int]:
    """The stored minutes of ``window``, and through which ``seq`` they count.

    A flush writes the whole-run histogram and the minutes together, and ``through_seq``
    only grows: minutes read between two equal readings of it count through that ``seq``.
    Otherwise a flush came between, and the minutes are read again.
    """
    _, through_seq = await _stored_total(store, kind, job_id)
    while True:
        stored = await store.histograms.read(kind, job_id, window.first, window.last)
        _, through_now = await _stored_total(store, kind, job_id)
        if through_now == through_seq:
            return stored, through_seq
        through_seq = through_now


async def minute_histograms(
    store: Store, job_id: int, kind: str = KIND
) -> dict[int, LatencyHistogram]:
    """Every minute of the experiment or series (since the Unix epoch) that holds a result,
    as its histogram: the stored minutes plus the tail."""
    stored, through_seq = await _stored_minutes(store, kind, job_id, MinuteWindow(0, 2**40))
    # A month of minutes is 43,200 histograms to decode: not on the event loop.
    if len(stored) > _THREAD_ABOVE:
        minutes = await asyncio.to_thread(_each_merged, stored)
    else:
        minutes = _each_merged(stored)
    for result in await _tail(store, kind, job_id, through_seq):
        minutes.setdefault(minute_of(result), LatencyHistogram()).record(
            result.latency_ms, result.error
        )
    return minutes


class StatsKeeper:
    """Keeps one running experiment's stored histograms in step with its results.

    It flushes every ``flush_results`` results, so the tail ``/stats`` recounts never holds
    more; time plays no part (a slow experiment's tail is short anyway). The payloads it last
    stored are kept (a few KB), so a flush reads nothing: it decodes them, adds the pending
    results and encodes them again. The first flush comes after a share of ``flush_results``
    set by the job id, so experiments started together never flush in the same instant.
    """

    def __init__(
        self, store: Store, job_id: int, flush_results: int = FLUSH_RESULTS, kind: str = KIND
    ) -> None:
        self._store = store
        self._kind = kind
        self._job_id = job_id
        self._flush_results = flush_results
        phase = (job_id * 0.6180339887) % 1.0  # the golden ratio spreads ids evenly
        self._threshold = max(1, flush_results - int(phase * flush_results / 2))
        self._pending: list[ProbeResult] = []
        self._stored: dict[int, str] = {}  # bucket -> payload, as last written
        # The minutes whose stored histogram this keeper has read or written. None for a new
        # experiment: nothing is stored but what it writes. After a restart another process
        # (whose clock may differ) may have stored any minute, so each is read once.
        self._known: set[int] | None = None

    async def load(self) -> None:
        """Take up what is stored: the whole-run histogram and the results it does not count."""
        self._stored = await self._store.histograms.read(
            self._kind, self._job_id, TOTAL_BUCKET, TOTAL_BUCKET
        )
        through_seq = _through_seq(self._stored.get(TOTAL_BUCKET))
        self._pending = await _tail(self._store, self._kind, self._job_id, through_seq)
        self._known = set()

    def add(self, result: ProbeResult) -> None:
        self._pending.append(result)

    def due(self) -> bool:
        return len(self._pending) >= self._threshold

    async def updates(self) -> list[HistogramUpdate]:
        """The stored histograms with the pending results added, to write with the last one."""
        total = LatencyHistogram()
        through_seq = _through_seq(self._stored.get(TOTAL_BUCKET), into=total)
        fresh = [result for result in self._pending if result.seq >= through_seq]
        if not fresh:
            return []
        minutes: dict[int, LatencyHistogram] = {}
        for result in fresh:
            total.record(result.latency_ms, result.error)
            minute = minutes.setdefault(minute_of(result), LatencyHistogram())
            minute.record(result.latency_ms, result.error)
        await self._read_missing(minutes.keys())
        for number, histogram in minutes.items():
            if number in self._stored:
                histogram.add_payload(self._stored[number])
        end_seq = fresh[-1].seq + 1
        updates = [self._update(TOTAL_BUCKET, total.to_payload(through_seq=end_seq))]
        return updates + [self._update(n, h.to_payload()) for n, h in minutes.items()]

    async def _read_missing(self, minutes: Iterable[int]) -> None:
        """Minutes stored before a restart are added to, never replaced."""
        if self._known is None:
            return
        missing = [minute for minute in minutes if minute not in self._known]
        if missing:
            first, last = min(missing), max(missing)
            read = self._store.histograms.read(self._kind, self._job_id, first, last)
            self._stored |= await read
            self._known.update(range(first, last + 1))

    def _update(self, bucket: int, payload: str) -> HistogramUpdate:
        return HistogramUpdate(self._kind, self._job_id, bucket, payload)

    def flushed(self, updates: Sequence[HistogramUpdate]) -> None:
        """The updates were committed: they are what is stored now. Within one process
        probes start in time order, so older minutes are not needed again; after a restart
        a minute no longer held is read again if a result falls into it."""
        stored = {update.bucket: update.payload for update in updates}
        if self._known is not None:  # minutes written before and not held any more: unknown
            self._known -= self._stored.keys() - stored.keys()
            self._known.update(stored)
        self._stored = stored
        self._pending = []
        self._threshold = self._flush_results


def _through_seq(payload: str | None, into: LatencyHistogram | None = None) -> int:
    """The first ``seq`` a stored whole-run histogram does not count (0: none stored)."""
    if payload is None:
        return 0
    return int((into or LatencyHistogram()).add_payload(payload)["through_seq"])
