"""Under load the handler and the writer read in batches: after a read that got less than
it asked for, each waits ``LINGER_S`` before the next, so that one round trip to the queue
carries many requests instead of one (times recorded by the queue, not guessed)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from latlab.pipeline import handler as handler_module
from latlab.pipeline import writer as writer_module
from latlab.pipeline.files import Fsync
from latlab.pipeline.handler import Handler
from latlab.pipeline.queue.base import Outcome
from latlab.pipeline.queue.sql import SqlQueue
from latlab.pipeline.receipts import Incoming, Receipt
from latlab.pipeline.writer import OrderedWriter
from pipeline_files import stop_tasks, wait_for_results

REQUESTS = 60
TIMER_SLACK_S = 0.001  # a loop may run a timer up to its clock's resolution early


class RecordingQueue(SqlQueue):
    """The SQLite queue, noting when each read began and ended and what it got."""

    reads: dict[str, list[tuple[float, float, int]]]

    def _note(self, read: str, began_s: float, got: int) -> None:
        self.reads.setdefault(read, []).append((began_s, time.monotonic(), got))

    async def claim(self, limit: int, wait_s: float) -> list[Receipt]:
        began_s = time.monotonic()
        found = await super().claim(limit, wait_s)
        self._note("claim", began_s, len(found))
        return found

    async def receipts(self, after: int, limit: int, wait_s: float) -> list[Receipt]:
        began_s = time.monotonic()
        found = await super().receipts(after, limit, wait_s)
        self._note("receipts", began_s, len(found))
        return found

    async def finished(self, mark: str, limit: int, wait_s: float) -> tuple[list[Outcome], str]:
        began_s = time.monotonic()
        found, mark = await super().finished(mark, limit, wait_s)
        self._note("finished", began_s, len(found))
        return found, mark


def pauses_after_short_reads(reads: list[tuple[float, float, int]], asked: int) -> list[float]:
    """For each read that got something but less than ``asked``: the pause until the next."""
    return [
        after[0] - before[1] for before, after in itertools.pairwise(reads) if 0 < before[2] < asked
    ]


async def test_the_handler_and_the_writer_pause_after_a_short_read(tmp_path: Path) -> None:
    queue = await RecordingQueue.open(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    queue.reads = {}
    handler = Handler(queue, concurrency=1000, max_tries=5)
    writer = OrderedWriter(queue, tmp_path / "out", Fsync.NEVER)
    tasks = [asyncio.create_task(handler.run()), asyncio.create_task(writer.run())]
    try:
        for _ in range(REQUESTS):  # a trickle: each read would otherwise get one
            await queue.append([Incoming(str(uuid.uuid4()), 0.0, datetime.now(UTC))])
            await asyncio.sleep(0.002)
        await wait_for_results(tmp_path / "out", REQUESTS)
    finally:
        await stop_tasks(tasks)
        await queue.close()
    claims = pauses_after_short_reads(queue.reads["claim"], asked=1000)
    reads = pauses_after_short_reads(queue.reads["receipts"], writer_module.READ_BATCH)
    reads += pauses_after_short_reads(queue.reads["finished"], writer_module.READ_BATCH)
    assert claims
    assert reads
    assert min(claims) >= handler_module.LINGER_S - TIMER_SLACK_S
    assert min(reads) >= writer_module.LINGER_S - TIMER_SLACK_S
