"""The writer tells the queue which receipts are written for good, so that the queue does not
grow by one entry per request for ever; a writer restarted afterwards still finds its place
and goes on, each request once, in receipt order."""

from __future__ import annotations

import asyncio
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
from latlab.pipeline.writer import OrderedWriter
from pipeline_files import Reopen, read_table, wait_for_results


def incoming(count: int) -> list[Incoming]:
    return [Incoming(str(uuid.uuid4()), 0.0, datetime.now(UTC)) for _ in range(count)]


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
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_written_receipts_are_forgotten_and_a_restarted_writer_goes_on(
    reopen: Reopen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "FORGET_EVERY_S", 0.05)
    first = await reopen()
    appended = await first.append(incoming(20))
    await run_until_written(first, tmp_path / "out", 20)
    restarted = await reopen()
    appended += await restarted.append(incoming(5))
    await run_until_written(restarted, tmp_path / "out", 25)
    ids = [receipt.request_id for receipt in appended]
    assert [row[0] for row in read_table(tmp_path / "out" / "2.txt")] == ids
    assert [row[0] for row in read_table(tmp_path / "out" / "1.txt")] == ids
