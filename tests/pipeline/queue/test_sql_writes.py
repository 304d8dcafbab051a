"""The SQL queue's transactions (``sql_writes``), on each adapter: a SQLite file written with
sqlite3 (``sqlite_writes``), and SQLAlchemy on the local PostgreSQL; and forgetting through
the queue."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from latlab.pipeline.queue import sql, sql_rows
from latlab.pipeline.queue.sql import SqlQueue
from latlab.pipeline.queue.sql_writes import AlchemyWrites, Change, ReceiptWrites
from latlab.pipeline.queue.sqlite_sql import CHUNK_ROWS
from latlab.pipeline.queue.sqlite_writes import SqliteWrites
from latlab.pipeline.receipts import Incoming
from latlab.storage.sql.engine import create_engine, migrate
from latlab.storage.sql.tables import pipeline_receipts as table
from pipeline_files import receipts

MANY = 2 * CHUNK_ROWS + 7  # more rows than one statement takes


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, ReceiptWrites]]:
    """A migrated, empty receipts table and the adapter that writes it."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    else:
        engine = create_engine(request.getfixturevalue("postgres_url"))
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.execute(table.delete())
    if request.param == "sqlite":
        writes: ReceiptWrites = await SqliteWrites.open(engine.url)
    else:
        writes = AlchemyWrites(engine)
    try:
        yield engine, writes
    finally:
        await writes.close()
        await engine.dispose()


async def stored(engine: AsyncEngine) -> list[tuple[int, int, int | None, str | None]]:
    """(seq, tries, finished_order, error) of every row, by seq."""
    query = sa.select(table.c.seq, table.c.tries, table.c.finished_order, table.c.error)
    async with engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(query.order_by(table.c.seq))]


async def test_one_commit_writes_every_part_however_many_rows(
    store: tuple[AsyncEngine, ReceiptWrites],
) -> None:
    engine, writes = store
    await writes.commit(Change(receipts=receipts(1, MANY)))
    outcomes = [(seq, seq, None if seq % 2 else "gave up") for seq in range(1, MANY + 1)]
    committed = await writes.commit(
        Change(outcomes=outcomes, claimed=list(range(1, MANY + 1)), last_order=MANY)
    )
    assert (committed.recorded, committed.last_order) == (outcomes, MANY)
    assert await stored(engine) == [(seq, 1, order, error) for seq, order, error in outcomes]


async def test_a_commit_that_fails_writes_nothing_of_it(
    store: tuple[AsyncEngine, ReceiptWrites],
) -> None:
    engine, writes = store
    await writes.commit(Change(receipts=receipts(1, 3)))
    clash = Change(
        # seq 3 is taken: the clash is in the second statement, after a first one went in
        receipts=receipts(4, CHUNK_ROWS) + receipts(3, 1),
        outcomes=[(1, 1, None)],
        claimed=[2],
        last_order=1,
    )
    with pytest.raises((sa.exc.IntegrityError, sqlite3.IntegrityError)):
        await writes.commit(clash)
    assert await stored(engine) == [(1, 0, None, None), (2, 0, None, None), (3, 0, None, None)]
    await writes.commit(Change(receipts=receipts(4, 1)))  # and the adapter goes on
    assert [row[0] for row in await stored(engine)] == [1, 2, 3, 4]


async def test_an_outcome_of_a_receipt_not_handed_out_here_is_numbered_only_if_it_waits(
    store: tuple[AsyncEngine, ReceiptWrites],
) -> None:
    engine, writes = store
    await writes.commit(Change(receipts=receipts(1, 2)))
    committed = await writes.commit(
        Change(unknown=[(2, "lost"), (99, "never received"), (2, "again")], last_order=4)
    )
    assert (committed.recorded, committed.last_order) == ([(2, 5, "lost")], 5)
    assert await stored(engine) == [(1, 0, None, None), (2, 0, 5, "lost")]


async def _finished(queue: SqlQueue, count: int) -> None:
    now = datetime.now(UTC)
    await queue.append([Incoming(str(uuid.uuid4()), 0.0, now) for _ in range(count)])
    await queue.claim(count, 0)
    await asyncio.gather(*(queue.finish(seq, None) for seq in range(1, count + 1)))


async def _left(queue: SqlQueue) -> list[int]:
    return [receipt.seq for receipt in await queue.receipts(after=0, limit=100, wait_s=0)]


async def test_forget_far_behind_drops_everything_in_bounded_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_rows, "FORGET_BATCH", 3)
    queue = await SqlQueue.open(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    try:
        await _finished(queue, 20)
        before = queue.transactions
        await queue.forget(19)
        assert await _left(queue) == [20]
        assert queue.transactions - before == 7  # three at a time: 19 in seven steps
    finally:
        await queue.close()


async def test_closing_leaves_what_is_left_to_forget_to_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_rows, "FORGET_BATCH", 3)
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    queue = await SqlQueue.open(url)
    try:
        await _finished(queue, 20)
        share_s = sql.SHARE_COMMIT_S
        monkeypatch.setattr(sql, "SHARE_COMMIT_S", 0.2)  # each step waits so for an append
        forgetting = asyncio.create_task(queue.forget(19))
        await queue.receipts(after=20, limit=1, wait_s=5)  # back once a commit came
    finally:
        async with asyncio.timeout(1):  # not the ~1.4 s all seven steps would take
            await queue.close()
            await forgetting
    monkeypatch.setattr(sql, "SHARE_COMMIT_S", share_s)
    restarted = await SqlQueue.open(url)
    try:
        # Two steps: the writer sets a step's future before it wakes readers, so forget()
        # had asked for its second step before the test went on to close.
        assert len(await _left(restarted)) == 14
        await restarted.forget(19)
        assert await _left(restarted) == [20]
    finally:
        await restarted.close()
