"""The handler: a request that keeps coming back (its handler died with it each time) is
written as ERROR after ``max_tries``, so it never blocks the files."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from latlab.pipeline.files import Fsync
from latlab.pipeline.handler import Handler
from latlab.pipeline.queue.sql import SqlQueue
from latlab.pipeline.receipts import Incoming
from latlab.pipeline.writer import OrderedWriter
from pipeline_files import read_table, wait_for_results


def incoming(delay_s: float = 0.0) -> Incoming:
    return Incoming(str(uuid.uuid4()), delay_s, datetime.now(UTC))


async def test_a_request_past_max_tries_is_written_as_error_and_the_next_one_follows(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    first = await SqlQueue.open(url)
    [poison] = await first.append([incoming()])
    assert [r.seq for r in await first.claim(1, 0)] == [1]  # its handler dies with it
    await first.close()
    queue = await SqlQueue.open(url)  # the restart: it is handed out again, tries 2
    await queue.append([incoming()])
    handler = Handler(queue, concurrency=10, max_tries=1)
    writer = OrderedWriter(queue, tmp_path / "out", Fsync.NEVER)
    tasks = [asyncio.create_task(handler.run()), asyncio.create_task(writer.run())]
    try:
        await wait_for_results(tmp_path / "out", 2)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await queue.close()
    rows = read_table(tmp_path / "out" / "1.txt")
    assert rows[0][0] == poison.request_id
    assert rows[0][2] == "ERROR: gave up after 1 tries"
    assert rows[1][2].startswith("20")  # the next request was processed and written
    assert (handler.failed, handler.processed) == (1, 1)
