"""Group commit: batches across jobs, waits for the commit, survives cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from latlab.storage import ProbeResult, Record
from latlab.storage.memory import MemoryStore
from latlab.storage.records import ProgressUpdate
from latlab.storage.writer import BatchWriter

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingStore(MemoryStore):
    """The memory store, noting each checkpoint call and able to fail on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []
        self.fail_with: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def checkpoint(
        self, records: Sequence[Record], progress: Sequence[ProgressUpdate]
    ) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((len(records), len(progress)))
        await super().checkpoint(records, progress)


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
