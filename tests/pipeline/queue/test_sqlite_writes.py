"""What only the SQLite file adapter does (``sqlite_writes``): it never makes the event loop
wait for a lock or a checkpoint, every statement finds its rows by seq, and the log it
writes is started over once checkpointed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from latlab.pipeline.queue import sqlite_writes as sqlite_writes_module
from latlab.pipeline.queue.base import QueueUnavailable
from latlab.pipeline.queue.sql_writes import Change
from latlab.pipeline.queue.sqlite_sql import COUNT_DOOMED, DELETE, RECORD, RECORD_ONE, placeholders
from latlab.pipeline.queue.sqlite_writes import SqliteWrites, sqlite_file
from latlab.storage.sql.engine import create_engine, migrate
from pipeline_files import receipts


@pytest.fixture
async def sqlite_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Path, SqliteWrites]]:
    """Its checkpoints only when the test asks (``checkpoint()``)."""
    monkeypatch.setattr(sqlite_writes_module, "CHECKPOINT_EVERY_S", 3600.0)
    path = tmp_path / "q.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    writes = await SqliteWrites.open(engine.url)
    try:
        yield path, writes
    finally:
        await writes.close()
        await engine.dispose()


async def test_a_transaction_finding_the_lock_taken_waits_for_it_off_the_event_loop(
    sqlite_writes: tuple[Path, SqliteWrites],
) -> None:
    path, writes = sqlite_writes
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer, e.g. the store's engine
        committing = asyncio.create_task(writes.commit(Change(receipts=receipts(1, 2))))
        started_s = time.monotonic()
        await asyncio.sleep(0)  # its first step: refused at once, now waiting in the thread
        # Refused at once, not after the busy timeout (10 s) on the loop.
        assert time.monotonic() - started_s < 5.0
        assert (writes.waited, committing.done()) == (1, False)
        other.execute("COMMIT")
        await committing
        assert [seq for (seq,) in other.execute("SELECT seq FROM pipeline_receipts")] == [1, 2]
    finally:
        other.close()


async def test_a_large_transaction_runs_in_the_thread_not_on_the_loop(
    sqlite_writes: tuple[Path, SqliteWrites], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, writes = sqlite_writes
    monkeypatch.setattr(sqlite_writes_module, "INLINE_ROWS", 5)
    await writes.commit(Change(receipts=receipts(1, 6)))
    await writes.commit(Change(receipts=receipts(7, 5)))
    assert (writes.in_thread, writes.waited) == (1, 0)


def log_pages(path: Path) -> int:
    """Frames in the write-ahead log (from a passive checkpoint, which copies them into the
    database but never starts the log over: only a write does)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


async def grow_log(writes: SqliteWrites, first: int) -> int:
    for start in range(first, first + 400, 10):  # commits do not checkpoint: it only grows
        await writes.commit(Change(receipts=receipts(start, 10)))
    return first + 400


async def test_a_long_log_is_started_over_by_the_checkpoint_itself(
    sqlite_writes: tuple[Path, SqliteWrites], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, writes = sqlite_writes
    await grow_log(writes, 1)
    grown = log_pages(path)
    monkeypatch.setattr(sqlite_writes_module, "RESTART_OVER_PAGES", grown - 1)
    await writes.checkpoint()
    assert (grown > 40, writes.restarts) == (True, 1)
    assert log_pages(path) <= 2  # its own one-page write: no commit had to sync a new log


async def test_a_reader_holding_the_log_is_waited_for_without_holding_the_writes_each_pass(
    sqlite_writes: tuple[Path, SqliteWrites], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, writes = sqlite_writes
    now_s = [1000.0]
    monkeypatch.setattr(sqlite_writes_module, "monotonic", lambda: now_s[0])
    monkeypatch.setattr(sqlite_writes_module, "RESTART_OVER_PAGES", 10)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM pipeline_receipts").fetchone()  # a snapshot held
    await grow_log(writes, 1)
    await writes.checkpoint()  # cannot copy what the reader may still read: tried in vain
    await writes.checkpoint()  # and not again before RESTART_BACKOFF_S
    assert (writes.checkpoints, writes.held, writes.restarts) == (2, 1, 0)
    now_s[0] += sqlite_writes_module.RESTART_BACKOFF_S
    await writes.checkpoint()
    assert (writes.held, writes.restarts) == (2, 0)
    reader.execute("COMMIT")
    reader.close()
    await writes.checkpoint()  # all copied now: started over at once
    assert (writes.held, writes.restarts, log_pages(path) <= 2) == (3, 1, True)


async def test_a_log_all_copied_is_started_over_by_the_thread_and_then_left_alone(
    sqlite_writes: tuple[Path, SqliteWrites],
) -> None:
    """Whoever writes first to a log all copied starts it over and syncs its header: the
    thread, not the loop's next commit. With nothing written since, no pass runs (copying
    the thread's own write would hand that sync back to the loop)."""
    path, writes = sqlite_writes
    await writes.commit(Change(receipts=receipts(1, 10)))
    await writes.checkpoint()  # a small log, all copied
    await writes.checkpoint()  # nothing written since
    assert (writes.checkpoints, writes.restarts, log_pages(path)) == (1, 1, 1)
    await writes.commit(Change(receipts=receipts(11, 10)))
    await writes.checkpoint()
    assert (writes.checkpoints, writes.restarts) == (2, 2)


def test_only_a_file_is_written_with_sqlite3_directly(tmp_path: Path) -> None:
    file = tmp_path / "q.db"
    assert sqlite_file(make_url(f"sqlite+aiosqlite:///{file}")) == (str(file), False)
    in_uri = make_url(f"sqlite+aiosqlite:///file:{file}?mode=rwc&uri=true")
    assert sqlite_file(in_uri) == (f"file:{file}?mode=rwc", True)
    for memory in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
        assert sqlite_file(make_url(memory)) is None
    assert sqlite_file(make_url("sqlite+aiosqlite:///file:q?mode=memory&uri=true")) is None
    in_memory_dir = make_url("sqlite+aiosqlite:////srv/memory/q.db?uri=true")
    assert sqlite_file(in_memory_dir) == ("/srv/memory/q.db", True)


async def test_closing_twice_is_closing_once_and_a_commit_after_is_refused(
    sqlite_writes: tuple[Path, SqliteWrites],
) -> None:
    _, writes = sqlite_writes
    await writes.close()
    await writes.close()  # and the fixture's third
    with pytest.raises(QueueUnavailable, match="closed"):
        await writes.commit(Change(receipts=receipts(1, 1)))


def plan(db: sqlite3.Connection, statement: str, parameters: Sequence[object]) -> str:
    return str(db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall())


async def test_each_statement_finds_its_receipts_by_seq_not_through_another_index(
    sqlite_writes: tuple[Path, SqliteWrites],
) -> None:
    """Through the run_id index, "run_id IS NULL" read every receipt and sorted them all;
    through the finished_order one, "IS NULL" read every receipt still waiting (1.4 ms a
    statement with 12,000 waiting)."""
    path, _ = sqlite_writes
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in (COUNT_DOOMED, DELETE):
            assert "ix_pipeline_receipts_run_id" not in plan(db, statement, (1, 1, 1))
        record = RECORD.format(values=placeholders(2, 3))
        for found in (plan(db, record, (1, 1, None) * 2), plan(db, RECORD_ONE, (1, None, 1))):
            assert "(seq=?)" in found
            assert "finished_order" not in found
