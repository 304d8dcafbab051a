"""Experiment stats from stored histograms plus the tail equal a full recount, on every store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from conftest import STORE_KINDS
from harness import CountingTarget, run_experiment_to_end, running_engine, wait_for
from latlab.jobs.kinds.probe import KIND, ProbeRunner
from latlab.jobs.kinds.probe_stats import (
    MinuteWindow,
    StatsKeeper,
    experiment_stats,
    minute_histograms,
    minute_of,
)
from latlab.jobs.state import Action
from latlab.measure.stats import LatencyHistogram
from latlab.storage import TOTAL_BUCKET, ProbeResult, Store
from latlab.storage.records import ProgressUpdate


async def recount(
    store: Store, job_id: int, window: MinuteWindow | None = None
) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for result in await store.probe_results.list(job_id):
        if window is None or window.holds(result):
            histogram.record(result.latency_ms, result.error)
    return histogram


async def run_to_end(store: Store, spec: dict[str, Any], flush_results: int) -> int:
    return await run_experiment_to_end(store, ProbeRunner(flush_results), spec)


@pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
async def test_stats_equal_a_full_recount_on_every_store(store: Store) -> None:
    async with CountingTarget() as target:
        spec = {"host": "127.0.0.1", "port": target.port, "interval_s": 0.002, "count": 60}
        job_id = await run_to_end(store, spec, flush_results=7)
    stats = (await experiment_stats(store, job_id)).stats()
    assert stats == (await recount(store, job_id)).stats()
    assert stats.count == 60
    stored = await store.histograms.read(KIND, job_id, TOTAL_BUCKET, TOTAL_BUCKET)
    assert TOTAL_BUCKET in stored  # flushed while it ran; what came after is the tail


async def test_failed_probes_are_counted_by_kind(store: Store, unused_port: int) -> None:
    spec = {"host": "127.0.0.1", "port": unused_port, "interval_s": 0.001, "count": 5}
    job_id = await run_to_end(store, spec, flush_results=200)
    stats = (await experiment_stats(store, job_id)).stats()
    assert (stats.count, stats.errors, stats.errors_by_kind["refused"]) == (5, 5, 5)
    assert stats.p50_ms is None


async def test_results_not_yet_in_the_histograms_are_counted_from_the_tail(store: Store) -> None:
    async with CountingTarget() as target:
        spec = {"host": "127.0.0.1", "port": target.port, "interval_s": 0.01, "count": 1000}
        async with running_engine(store, [ProbeRunner(1000)]) as jobs:
            job = await jobs.create(KIND, spec, start=True)

            async def some_done() -> bool:
                return await store.probe_results.count(job.id) >= 10

            await wait_for(some_done, what="ten results")
            await jobs.act(KIND, job.id, Action.PAUSE)
    assert await store.histograms.read(KIND, job.id, TOTAL_BUCKET, TOTAL_BUCKET) == {}
    stats = (await experiment_stats(store, job.id)).stats()
    assert stats == (await recount(store, job.id)).stats()
    assert stats.count == await store.probe_results.count(job.id)


def result_at(job_id: int, seq: int, at: datetime, latency_ms: float) -> ProbeResult:
    return ProbeResult(job_id, seq, 200, latency_ms, at, at, None, None, None, None)


async def keep(store: Store, job_id: int, results: list[ProbeResult], *, flush: bool) -> None:
    """Store ``results`` as the runner would, flushing the histograms with the last or not."""
    keeper = StatsKeeper(store, job_id)
    await keeper.load()
    for result in results:
        keeper.add(result)
    histograms = await keeper.updates() if flush else []
    update = ProgressUpdate(KIND, job_id, {"done": results[-1].seq + 1})
    await store.checkpoint(results, [update], histograms)


@pytest.mark.parametrize("store_url", ["memory", "sqlite"], indirect=True)
async def test_a_window_counts_the_minutes_it_covers_exactly(store: Store) -> None:
    job = await store.create_job(KIND, {"host": "127.0.0.1", "port": 1})
    start = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    results = [
        result_at(job.id, seq, start + timedelta(seconds=seq * 7), 1.0 + seq % 13)
        for seq in range(60)  # seven minutes of probes
    ]
    await keep(store, job.id, results[:40], flush=True)
    await keep(store, job.id, results[40:], flush=False)  # these stay in the tail
    for first, last in [(0, 0), (1, 3), (4, 6), (0, 6), (5, 9)]:
        window = MinuteWindow(minute_of(results[0]) + first, minute_of(results[0]) + last)
        stats = (await experiment_stats(store, job.id, window)).stats()
        assert stats == (await recount(store, job.id, window)).stats()
    whole = (await experiment_stats(store, job.id)).stats()
    assert whole.count == 60


async def test_a_resumed_keeper_takes_up_the_tail_once(store: Store) -> None:
    job = await store.create_job(KIND, {"host": "127.0.0.1", "port": 1})
    start = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    results = [result_at(job.id, seq, start + timedelta(seconds=seq), 2.0) for seq in range(30)]
    await keep(store, job.id, results[:10], flush=True)
    await keep(store, job.id, results[10:20], flush=False)
    await keep(store, job.id, results[20:], flush=True)  # loads 10..19 from the tail first
    stored = await store.histograms.read(KIND, job.id, TOTAL_BUCKET, TOTAL_BUCKET)
    assert '"through_seq":30' in stored[TOTAL_BUCKET]
    assert (await experiment_stats(store, job.id)).stats() == (await recount(store, job.id)).stats()
    # Every probe started in one minute: its histogram was added to, never replaced.
    minute = MinuteWindow(minute_of(results[0]), minute_of(results[0]))
    assert (await experiment_stats(store, job.id, minute)).stats().count == 30


async def test_flushes_of_experiments_started_together_are_spread_out(store: Store) -> None:
    first_flush = []
    for job_id in range(1, 101):
        keeper = StatsKeeper(store, job_id, flush_results=100)
        results = 0
        while not keeper.due():
            keeper.add(result_at(job_id, results, datetime(2026, 12, 3, tzinfo=UTC), 1.0))
            results += 1
        first_flush.append(results)
    assert min(first_flush) > 50
    assert max(first_flush) == 100
    per_ten = [sum(n // 10 == tens for n in first_flush) for tens in range(5, 10)]
    assert all(10 <= flushes <= 30 for flushes in per_ten), per_ten


async def test_a_keeper_flushes_every_flush_results_after_the_first(store: Store) -> None:
    job = await store.create_job(KIND, {"host": "127.0.0.1", "port": 1})
    keeper = StatsKeeper(store, job.id, flush_results=10)
    at = datetime(2026, 12, 3, tzinfo=UTC)
    seq = 0
    flushes_at: list[int] = []
    while len(flushes_at) < 3:
        keeper.add(result_at(job.id, seq, at, 1.0))
        seq += 1
        if keeper.due():
            keeper.flushed(await keeper.updates())
            flushes_at.append(seq)
    assert flushes_at[1] - flushes_at[0] == flushes_at[2] - flushes_at[1] == 10


class FlushBeforeFirstMinutesRead:
    """The real store, with a keeper's flush landing just before /stats reads the minutes."""

    def __init__(self, store: Store, flush: Callable[[], Awaitable[None]]) -> None:
        self._store = store
        self._flush: Callable[[], Awaitable[None]] | None = flush
        self.histograms = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def read(self, kind: str, job_id: int, first: int, last: int) -> dict[int, str]:
        if first != TOTAL_BUCKET and self._flush is not None:
            flush, self._flush = self._flush, None
            await flush()
        return await self._store.histograms.read(kind, job_id, first, last)


async def test_a_flush_between_the_reads_of_a_window_is_not_counted_twice(store: Store) -> None:
    job = await store.create_job(KIND, {"host": "127.0.0.1", "port": 1})
    start = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    results = [result_at(job.id, seq, start + timedelta(seconds=seq), 2.0) for seq in range(20)]
    await keep(store, job.id, results[:10], flush=True)
    await keep(store, job.id, results[10:], flush=False)

    async def flush_the_tail() -> None:
        keeper = StatsKeeper(store, job.id)
        await keeper.load()
        await store.checkpoint([], [], await keeper.updates())

    racing = cast(Store, FlushBeforeFirstMinutesRead(store, flush_the_tail))
    window = MinuteWindow(minute_of(results[0]), minute_of(results[0]))
    assert (await experiment_stats(racing, job.id, window)).stats().count == 20


async def test_a_keeper_after_a_restart_adds_to_minutes_stored_before_it(store: Store) -> None:
    """The new process's clock is a minute behind: it writes the earlier minute first, then
    probes fall into the minute the old process stored, which must be added to."""
    job = await store.create_job(KIND, {"host": "127.0.0.1", "port": 1})
    minute = datetime(2026, 12, 3, 10, 5, tzinfo=UTC)
    old = [result_at(job.id, seq, minute, 1.0) for seq in range(10)]
    behind = [result_at(job.id, seq, minute - timedelta(minutes=1), 1.0) for seq in range(10, 15)]
    caught_up = [result_at(job.id, seq, minute, 1.0) for seq in range(15, 20)]
    await keep(store, job.id, old, flush=True)
    keeper = StatsKeeper(store, job.id)
    await keeper.load()
    for batch in (behind, caught_up):
        for result in batch:
            keeper.add(result)
        updates = await keeper.updates()
        await store.checkpoint(batch, [], updates)
        keeper.flushed(updates)
    window = MinuteWindow(minute_of(old[0]), minute_of(old[0]))
    assert (await experiment_stats(store, job.id, window)).stats().count == 15
    assert (await experiment_stats(store, job.id)).stats().count == 20


@pytest.mark.parametrize("store_url", ["memory", "sqlite"], indirect=True)
async def test_each_minutes_histogram_is_its_stored_one_and_its_tail(store: Store) -> None:
    job = await store.create_job(KIND, {"host": "127.0.0.1", "port": 1})
    start = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    results = [  # 80 minutes (more than are merged on the event loop), two probes each
        result_at(job.id, seq, start + timedelta(seconds=seq * 30), 1.0 + seq % 7)
        for seq in range(160)
    ]
    await keep(store, job.id, results[:150], flush=True)
    await keep(store, job.id, results[150:], flush=False)  # these stay in the tail
    minutes = await minute_histograms(store, job.id)
    assert sorted(minutes) == sorted({minute_of(result) for result in results})
    for minute, histogram in minutes.items():
        window = MinuteWindow(minute, minute)
        assert histogram.stats() == (await recount(store, job.id, window)).stats()
