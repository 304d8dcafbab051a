"""Group commit: batches across jobs, waits for the commit, survives cancellation; the
``committed`` hook, queued histograms and the writer's metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from latlab.storage import TOTAL_BUCKET, HistogramUpdate, ProbeResult, Record
from latlab.storage.base import StoreUnavailable
from latlab.storage.memory import MemoryStore
from latlab.storage.records import ProgressUpdate
from latlab.storage.writer import BatchWriter, FencedOut

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingStore(MemoryStore):
    """The memory store, noting each checkpoint call and able to fail on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []
        self.fail_with: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.histogram_calls: list[list[HistogramUpdate]] = []
        self.entered = asyncio.Event()  # set when a checkpoint call starts

    async def checkpoint(
        self,
        records: Sequence[Record],
        progress: Sequence[ProgressUpdate],
        histograms: Sequence[HistogramUpdate] = (),
    ) -> set[tuple[str, int]]:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((len(records), len(progress)))
        self.histogram_calls.append(list(histograms))
        return await super().checkpoint(records, progress, histograms)


def result(job_id: int, seq: int) -> ProbeResult:
    return ProbeResult(job_id, seq, 200, 1.0, NOW, NOW)


async def test_concurrent_writes_share_one_transaction() -> None:
    store = RecordingStore()
    jobs = [await store.create_job("probe", {}) for _ in range(3)]
    async with BatchWriter(store, delay_s=0.001) as writer:
        await asyncio.gather(
            *(
                writer.write([result(job.id, 0)], [ProgressUpdate("probe", job.id, {"done": 1})])
                for job in jobs
            )
        )
    assert store.calls == [(3, 3)]
    assert [await store.probe_results.count(job.id) for job in jobs] == [1, 1, 1]


async def test_large_batches_are_split_and_progress_goes_last() -> None:
    store = RecordingStore()
    job = await store.create_job("probe", {})
    async with BatchWriter(store, max_results=2, delay_s=0) as writer:
        progress = [ProgressUpdate("probe", job.id, {"done": 5})]
        await writer.write([result(job.id, seq) for seq in range(5)], progress)
    assert store.calls == [(2, 0), (2, 0), (1, 1)]


async def test_progress_updates_for_one_job_merge_before_writing() -> None:
    store = RecordingStore()
    job = await store.create_job("probe", {})
    store.gate = asyncio.Event()
    async with BatchWriter(store, delay_s=0) as writer:
        first = asyncio.create_task(
            writer.write(progress=[ProgressUpdate("probe", job.id, {"a": 1})])
        )
        await asyncio.sleep(0)  # let the first batch start and block on the gate
        second = asyncio.create_task(
            writer.write(progress=[ProgressUpdate("probe", job.id, {"b": 2})])
        )
        third = asyncio.create_task(
            writer.write(progress=[ProgressUpdate("probe", job.id, {"b": 3})])
        )
        await asyncio.sleep(0)
        store.gate.set()
        await asyncio.gather(first, second, third)
    assert (await store.get_job("probe", job.id)).progress == {"a": 1, "b": 3}
    assert store.calls == [(0, 1), (0, 1)]


async def test_a_store_error_reaches_every_waiter() -> None:
    store = RecordingStore()
    store.fail_with = RuntimeError("disk full")
    async with BatchWriter(store, delay_s=0) as writer:
        with pytest.raises(RuntimeError, match="disk full"):
            await writer.write([result(1, 0)])
        store.fail_with = None
        await writer.write([result(1, 1)])  # the writer keeps going after a failed batch


async def test_a_cancelled_writer_still_commits_its_data() -> None:
    store = RecordingStore()
    job = await store.create_job("probe", {})
    store.gate = asyncio.Event()
    async with BatchWriter(store, delay_s=0) as writer:
        waiting = asyncio.create_task(writer.write([result(job.id, 0)]))
        await asyncio.sleep(0)
        waiting.cancel()
        store.gate.set()
        await writer.flush()
    assert await store.probe_results.count(job.id) == 1


async def test_write_on_a_closed_writer_is_refused() -> None:
    writer = BatchWriter(MemoryStore())
    with pytest.raises(RuntimeError, match="not running"):
        await writer.write()


def owned(job_id: int, owner: str, values: dict[str, object] | None = None) -> ProgressUpdate:
    return ProgressUpdate("probe", job_id, dict(values or {}), owner)


async def test_committed_gets_the_landed_records_of_each_call() -> None:
    store = RecordingStore()
    taken, kept = [job.id for job in await store.create_jobs("probe", [{}, {}])]
    await store.checkpoint([], [ProgressUpdate("probe", taken, {"fleet": "B"})])
    calls: list[list[tuple[int, int]]] = []

    def hook(landed: Sequence[Record]) -> None:
        calls.append([(r.job_id, r.seq) for r in landed])

    async with BatchWriter(store, max_results=3, delay_s=0, committed=hook) as writer:
        records = [result(job_id, seq) for seq in range(2) for job_id in (taken, kept)]
        with pytest.raises(FencedOut) as refused:
            await writer.write(records, [owned(taken, "A"), owned(kept, "A")])
        await writer.write(progress=[owned(kept, "A", {"done": 2})])
    assert refused.value.jobs == (("probe", taken),)
    # Chunks of 3 (taken 0, kept 0, taken 1 | kept 1 with the progress), told once; the
    # progress alone lands no record and is not told.
    assert calls == [[(kept, 0), (kept, 1)]]


class FailingSecondCall(RecordingStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def checkpoint(
        self,
        records: Sequence[Record],
        progress: Sequence[ProgressUpdate],
        histograms: Sequence[HistogramUpdate] = (),
    ) -> set[tuple[str, int]]:
        if self.calls and self.failures:
            self.failures -= 1
            raise StoreUnavailable("connection lost")
        return await super().checkpoint(records, progress, histograms)


async def test_a_batch_that_fails_halfway_is_told_once_when_written_again() -> None:
    store = FailingSecondCall()
    job = await store.create_job("probe", {})
    told: list[int] = []
    records = [result(job.id, seq) for seq in range(5)]
    hook = lambda landed: told.extend(r.seq for r in landed)  # noqa: E731
    async with BatchWriter(store, max_results=3, delay_s=0, committed=hook) as writer:
        with pytest.raises(StoreUnavailable):
            await writer.write(records)  # the first chunk committed, the second did not
        await writer.write(records)  # what a job does: write them all again
    assert told == [0, 1, 2, 3, 4]
    assert await store.probe_results.count(job.id) == 5


async def test_a_raising_hook_is_logged_and_breaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RecordingStore()
    job = await store.create_job("probe", {})
    seen: list[int] = []

    def hook(landed: Sequence[Record]) -> None:
        seen.extend(r.seq for r in landed)
        raise ValueError("broken hook")

    async with BatchWriter(store, delay_s=0, committed=hook) as writer:
        with caplog.at_level(logging.ERROR, logger="latlab.storage"):
            await writer.write([result(job.id, 0)])
            await writer.write([result(job.id, 1)])
    assert seen == [0, 1]
    assert await store.probe_results.count(job.id) == 2
    assert [r.message for r in caplog.records] == ["BatchWriter's committed hook failed"] * 2


async def test_queued_histograms_merge_newest_wins_and_go_with_the_progress() -> None:
    store = RecordingStore()
    job = await store.create_job("probe", {})
    store.gate = asyncio.Event()

    def hist(bucket: int, payload: str) -> HistogramUpdate:
        return HistogramUpdate("probe", job.id, bucket, payload)

    async with BatchWriter(store, max_results=2, delay_s=0) as writer:
        first = asyncio.create_task(writer.write(histograms=[hist(TOTAL_BUCKET, "a")]))
        await store.entered.wait()  # the first batch is in the store, waiting on the gate
        queued = [
            writer.write([result(job.id, seq) for seq in range(3)], histograms=[hist(7, "x")]),
            writer.write(histograms=[hist(TOTAL_BUCKET, "b"), hist(7, "y")]),
            writer.write(histograms=[hist(TOTAL_BUCKET, "c")]),
        ]
        tasks = [asyncio.create_task(write) for write in queued]
        await asyncio.sleep(0)  # let them queue behind the gate
        store.gate.set()
        await asyncio.gather(first, *tasks)
    assert store.histogram_calls == [
        [hist(TOTAL_BUCKET, "a")],
        [],
        [hist(7, "y"), hist(TOTAL_BUCKET, "c")],
    ]
    assert await store.histograms.read("probe", job.id, TOTAL_BUCKET, 10) == {-1: "c", 7: "y"}


async def test_queue_depth_counts_records_until_they_are_committed() -> None:
    store = RecordingStore()
    job = await store.create_job("probe", {})
    store.gate = asyncio.Event()
    async with BatchWriter(store, delay_s=0) as writer:
        assert (writer.queue_depth, writer.last_commit_age_s) == (0, None)
        first = asyncio.create_task(writer.write([result(job.id, seq) for seq in range(3)]))
        await store.entered.wait()
        second = asyncio.create_task(writer.write([result(job.id, 3), result(job.id, 4)]))
        await asyncio.sleep(0)  # let the second write queue
        assert (writer.queue_depth, writer.last_commit_age_s) == (5, None)
        store.gate.set()
        await asyncio.gather(first, second)
        assert writer.queue_depth == 0
        age = writer.last_commit_age_s
        assert age is not None
        assert 0 <= age < 5
        later = writer.last_commit_age_s
        assert later is not None
        assert later >= age


async def test_a_failed_commit_empties_the_queue_and_is_no_commit() -> None:
    store = RecordingStore()
    store.fail_with = RuntimeError("disk full")
    async with BatchWriter(store, delay_s=0) as writer:
        with pytest.raises(RuntimeError, match="disk full"):
            await writer.write([result(1, 0), result(1, 1)])
        assert (writer.queue_depth, writer.last_commit_age_s) == (0, None)


async def test_queued_updates_of_two_owners_keep_their_own_fences_in_order() -> None:
    """Found in review: two queued updates of one job were merged under the newer one's
    owner, so a claim fenced by the owner it takes over from, queued with the claimant's
    next update, was dropped with it (and an unconditional one lifted any fence)."""
    store = RecordingStore()
    job = await store.create_job("probe", {})
    await store.checkpoint([], [ProgressUpdate("probe", job.id, {"fleet": "gone"})])
    claim = ProgressUpdate("probe", job.id, {"fleet": "me"}, owner="gone")
    mine = ProgressUpdate("probe", job.id, {"done": 5}, owner="me")
    async with BatchWriter(store, delay_s=0.001) as writer:
        await asyncio.gather(writer.write(progress=[claim]), writer.write(progress=[mine]))
    assert (await store.get_job("probe", job.id)).progress == {"fleet": "me", "done": 5}


async def test_a_write_its_fence_refused_raises_for_that_job_alone() -> None:
    """Found in review: a fenced-out checkpoint was dropped in silence, so a process that
    had lost its job (frozen, then woken) went on probing, its writes landing nowhere."""
    store = RecordingStore()
    taken, kept = [job.id for job in await store.create_jobs("probe", [{}, {}])]
    await store.checkpoint([], [ProgressUpdate("probe", taken, {"fleet": "B"})])
    store.calls.clear()
    async with BatchWriter(store, delay_s=0.001) as writer:
        outcomes = await asyncio.gather(
            writer.write([result(taken, 0)], [owned(taken, "A", {"done": 1})]),
            writer.write([result(kept, 0)], [owned(kept, "A", {"done": 1})]),
            return_exceptions=True,
        )
    assert store.calls == [(2, 2)]  # one batch for both
    assert isinstance(outcomes[0], FencedOut)
    assert outcomes[0].jobs == (("probe", taken),)
    assert "probe job" in str(outcomes[0])
    assert outcomes[1] is None
    assert await store.probe_results.count(taken) == 0
    assert await store.probe_results.count(kept) == 1
