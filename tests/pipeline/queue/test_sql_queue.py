"""What only the embedded (SQL) queue does: the handler's writes share the receiver's commit.

One process holds one SQLite connection: a transaction of the handler's outcomes made the
receiver's next batch, whose acknowledgements clients wait for, wait behind it (ack p99
68 ms at 3,000 req/s, bench/pipeline_throughput.py)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from latlab.pipeline.queue import sql
from latlab.pipeline.queue.base import QueueUnavailable
from latlab.pipeline.queue.sql import SqlQueue
from latlab.pipeline.receipts import Incoming
from latlab.storage.sql.tables import pipeline_runs


def incoming() -> Incoming:
    return Incoming(str(uuid.uuid4()), 0.0, datetime.now(UTC))


async def test_an_outcome_waits_for_the_next_append_and_shares_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await SqlQueue.open(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    try:
        [first] = await queue.append([incoming()])
        assert [r.seq for r in await queue.claim(1, 0)] == [first.seq]
        monkeypatch.setattr(sql, "SHARE_COMMIT_S", 10.0)  # no clock in the way: it comes
        before = queue.transactions
        finishing = asyncio.create_task(queue.finish(first.seq, None))
        for _ in range(5):  # the finish is under way, waiting
            await asyncio.sleep(0)
        assert not finishing.done()
        [second] = await queue.append([incoming()])
        await finishing
        assert queue.transactions == before + 1
        outcomes, _ = await queue.finished("0", 10, 0)
        assert [o.seq for o in outcomes] == [first.seq]
        assert second.seq == first.seq + 1
    finally:
        await queue.close()


async def test_an_outcome_with_no_append_coming_is_committed_after_the_wait(
    tmp_path: Path,
) -> None:
    queue = await SqlQueue.open(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    try:
        [first] = await queue.append([incoming()])
        await queue.claim(1, 0)
        before = queue.transactions
        await queue.finish(first.seq, "gave up")
        assert queue.transactions == before + 1
        outcomes, _ = await queue.finished("0", 10, 0)
        assert [(o.seq, o.error) for o in outcomes] == [(first.seq, "gave up")]
    finally:
        await queue.close()


async def test_a_runs_forgotten_receipts_go_and_are_counted_on_its_row(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    queue = await SqlQueue.open(url)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                pipeline_runs.insert().values(
                    run_id="run-1", started_at=datetime.now(UTC), sent=0, acked=0, errors=0
                )
            )
        await queue.append([replace(incoming(), run_id=run) for run in ("run-1", "run-2") * 3])
        await queue.claim(6, 0)
        for seq in range(1, 7):
            await queue.finish(seq, None)
        await queue.forget(5)
        left = await queue.receipts(after=0, limit=10, wait_s=0)
        async with engine.connect() as conn:
            query = sa.select(pipeline_runs.c.forgotten).where(pipeline_runs.c.run_id == "run-1")
            forgotten = (await conn.execute(query)).scalar()
    finally:
        await engine.dispose()
        await queue.close()
    # run-1 (seqs 1, 3, 5) has a row: its receipts go; run-2's wait for theirs; 6 is the newest.
    assert [(r.seq, r.run_id) for r in left] == [(2, "run-2"), (4, "run-2"), (6, "run-2")]
    assert forgotten == 3


async def test_an_append_once_the_queue_closes_is_refused_not_written(tmp_path: Path) -> None:
    queue = await SqlQueue.open(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    await queue.close()
    with pytest.raises(QueueUnavailable, match="closing"):
        await queue.append([incoming()])
