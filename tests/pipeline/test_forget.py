"""The writer tells the queue which receipts are written for good, so that the queue does not
grow by one entry per request for ever; a writer restarted afterwards still finds its place
and goes on, each request once, in receipt order."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness import wait_for
from latlab.pipeline import writer as writer_module
from latlab.pipeline.files import Fsync
from latlab.pipeline.handler import Handler
from latlab.pipeline.queue import PipelineQueue
from latlab.pipeline.receipts import Incoming
from latlab.pipeline.writer import FilesMismatch, OrderedWriter
from pipeline_files import Reopen, read_table, stop_tasks, wait_for_results


def incoming(count: int) -> list[Incoming]:
    return [Incoming(str(uuid.uuid4()), 0.0, datetime.now(UTC)) for _ in range(count)]


@pytest.fixture(autouse=True)
def quick_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer tells the queue every 50 ms instead of every second."""
    monkeypatch.setattr(writer_module, "FORGET_EVERY_S", 0.05)


async def run_until_written(queue: PipelineQueue, out: Path, count: int) -> None:
    writer = OrderedWriter(queue, out, Fsync.BATCH)
    await writer.check_files()
    handler = Handler(queue, concurrency=100, max_tries=5)
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(handler.run())]
    try:
        await wait_for_results(out, count)

        async def forgotten() -> bool:
            oldest = await queue.receipts(after=0, limit=1, wait_s=0)
            return oldest[0].seq == count  # all but the last line of 2.txt are gone

        await wait_for(forgotten, timeout_s=10, what="the writer to forget written receipts")
    finally:
        await stop_tasks(tasks)


async def test_written_receipts_are_forgotten_and_a_restarted_writer_goes_on(
    reopen: Reopen, tmp_path: Path
) -> None:
    first = await reopen()
    appended = await first.append(incoming(20))
    await run_until_written(first, tmp_path / "out", 20)
    restarted = await reopen()
    appended += await restarted.append(incoming(5))
    await run_until_written(restarted, tmp_path / "out", 25)
    ids = [receipt.request_id for receipt in appended]
    assert [row[0] for row in read_table(tmp_path / "out" / "2.txt")] == ids
    assert [row[0] for row in read_table(tmp_path / "out" / "1.txt")] == ids


async def test_a_writer_on_new_files_after_a_forget_refuses_instead_of_skipping_lines(
    reopen: Reopen, tmp_path: Path
) -> None:
    queue = await reopen()
    await queue.append(incoming(10))
    await run_until_written(queue, tmp_path / "out", 10)
    elsewhere = OrderedWriter(queue, tmp_path / "new-out", Fsync.NEVER)
    try:
        with pytest.raises(FilesMismatch, match="forgotten receipts 1 to 9"):
            await elsewhere.check_files()
    finally:
        elsewhere.receipts.close()
        elsewhere.results.close()


async def test_before_forgetting_the_files_are_fsynced_even_with_fsync_never(
    reopen: Reopen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await reopen()
    await queue.append(incoming(5))
    writer = OrderedWriter(queue, tmp_path / "out", Fsync.NEVER)
    paths = {writer.receipts.path, writer.results.path}
    synced: set[Path] = set()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the OS seam: which files reached the disk before a forget
        if writer.forgotten_through == 0:
            synced.update(path for path in paths if os.path.samestat(os.fstat(fd), path.stat()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    handler = Handler(queue, concurrency=10, max_tries=5)
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(handler.run())]

    async def forgot() -> bool:
        return writer.forgotten_through > 0

    try:
        await wait_for(forgot, timeout_s=10, what="a forget")
    finally:
        await stop_tasks(tasks)
    assert synced == paths
