"""The SQL queue's transactions on a SQLite file, on the event loop itself.

A transaction of a few receipts takes SQLite about 0.1 ms. Handing each to a thread cost
more than that: waking it, and the GIL going back and forth with the busy loop (ack p99
at 5,000 req/s 6-8 ms through a thread, 4-6 ms here; the process at 73-81 % of a core
instead of 59-67 %). Two things must then stay off the loop:

- **Waiting for another writer's lock** (the store's engine writing a run, another process):
  the loop's connection never waits (busy timeout 0); a transaction that finds the lock
  taken goes to a thread, whose connection waits with the store's busy timeout.
- **Checkpoints** (copying the write-ahead log back into the database, with fsyncs): SQLite
  runs them inside a commit; here that thread runs them beside the writes, every
  ``CHECKPOINT_EVERY_S``. Writes that never pause would leave the log growing, so once it
  passes ``RESTART_OVER_PAGES`` a last pass holds them back and the next transaction starts
  the log over.

The statements are those of ``sql_rows``, written out for SQLite: the same contract tests
run on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any, Self, TypeVar

from sqlalchemy.engine import URL

from latlab.pipeline.queue import sql_rows
from latlab.pipeline.queue.sql_writes import Change, Committed
from latlab.pipeline.receipts import micros_of
from latlab.storage.sql.engine import SQLITE_BUSY_TIMEOUT_S, sqlite_pragmas

# One statement per kind of write, however many rows: sqlite3 lets the GIL go and takes it
# back at every step, and a step per row (executemany) made the thread wait for the busy
# event loop's GIL hundreds of times a transaction (250 deletes: 5-9 ms instead of ~1).
T = TypeVar("T")
logger = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 0.2
RESTART_OVER_PAGES = 2_000  # 8 MB of log at SQLite's 4 KiB pages
CHUNK_ROWS = 150  # x 6 columns stays under SQLite's oldest limit of 999 parameters

INSERT = (
    "INSERT INTO pipeline_receipts (seq, request_id, delay_s, receive_time_us, run_id, tries)"
    " VALUES "
)
# A CTE, not UPDATE ... FROM (SQLite 3.33+): any SQLite Python 3.11 may be linked with.
# ``+finished_order`` keeps SQLite off that column's index: through it, "IS NULL" read every
# receipt not yet finished (1.4 ms a statement with 12,000 waiting, instead of 13 µs).
RECORD = (
    "WITH outcome(o_seq, o_order, o_error) AS (VALUES {values})"
    " UPDATE pipeline_receipts"
    " SET finished_order = (SELECT o_order FROM outcome WHERE o_seq = seq),"
    " error = (SELECT o_error FROM outcome WHERE o_seq = seq)"
    " WHERE seq IN (SELECT o_seq FROM outcome) AND +finished_order IS NULL"
)
RECORD_ONE = (
    "UPDATE pipeline_receipts SET finished_order = ?, error = ?"
    " WHERE seq = ? AND +finished_order IS NULL"
)
ADD_TRY = "UPDATE pipeline_receipts SET tries = tries + 1 WHERE seq IN "
# As sql_rows.forget: never the receipt holding the last order, nor one of a run with no
# row. The same rows, counted per run and then deleted, in one transaction. ``+run_id``
# keeps SQLite off the run_id index: through it, "run_id IS NULL" read every receipt and
# sorted them (7 ms for 250 of 20,000), where the seq index reads just the 250.
COUNT_DOOMED = (
    "SELECT run_id, count(*) FROM pipeline_receipts WHERE seq IN ("
    " SELECT seq FROM pipeline_receipts WHERE seq <= ? AND finished_order < ?"
    " AND (+run_id IS NULL OR +run_id IN (SELECT run_id FROM pipeline_runs))"
    " ORDER BY seq LIMIT ?) GROUP BY run_id"
)
DELETE = (
    "DELETE FROM pipeline_receipts WHERE seq IN ("
    " SELECT seq FROM pipeline_receipts WHERE seq <= ? AND finished_order < ?"
    " AND (+run_id IS NULL OR +run_id IN (SELECT run_id FROM pipeline_runs))"
    " ORDER BY seq LIMIT ?)"
)
COUNT_FORGOTTEN = "UPDATE pipeline_runs SET forgotten = forgotten + ? WHERE run_id = ?"


class SqliteWrites:
    """:class:`~latlab.pipeline.queue.sql_writes.ReceiptWrites` on a SQLite file."""

    def __init__(
        self, db: sqlite3.Connection, side: sqlite3.Connection, thread: ThreadPoolExecutor
    ) -> None:
        self._db = db  # the event loop's; never waits for a lock
        self._side = side  # the thread's: transactions that must wait, and checkpoints
        self._thread = thread
        self._turn = asyncio.Lock()  # one transaction, or a checkpoint's last pass, at a time
        self._checkpoints: asyncio.Task[None] | None = None
        self.waited = 0  # transactions that found the lock taken and went to the thread
        self.checkpoints = 0
        self.restarts = 0  # checkpoints that held the writes back to let the log restart

    @classmethod
    async def open(cls, url: URL) -> Self:
        """On the file of ``url`` (a ``sqlite+aiosqlite`` URL naming a file)."""
        timeout_s = float(str(url.query.get("timeout", SQLITE_BUSY_TIMEOUT_S)))
        database = url.database or ""
        thread = ThreadPoolExecutor(1, thread_name_prefix="latlab-pipeline-sqlite")
        try:
            side = await asyncio.get_running_loop().run_in_executor(
                thread, _connect, database, timeout_s
            )
        except BaseException:
            thread.shutdown()
            raise
        writes = cls(_connect(database, 0.0), side, thread)
        writes._checkpoints = asyncio.get_running_loop().create_task(writes._checkpoint_often())
        return writes

    async def commit(self, change: Change) -> Committed:
        async with self._turn:
            try:
                return _transaction(self._db, change)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # any BUSY_* too
                    raise
            # Another connection writes (a store's engine, another process): wait for it in
            # the thread, with the busy timeout; the loop must not (it may be what that
            # writer waits for).
            self.waited += 1
            return await self._in_thread(_transaction, self._side, change)

    async def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
        self._db.close()
        await self._in_thread(self._side.close)
        self._thread.shutdown()

    async def checkpoint(self) -> None:
        """Copy the log into the database beside the writes; if the log has grown past
        ``RESTART_OVER_PAGES``, finish the copy with the writes held back, so that the next
        transaction starts the log over instead of making it longer."""
        log_pages = await self._in_thread(_checkpoint, self._side)
        self.checkpoints += 1
        if log_pages > RESTART_OVER_PAGES:
            async with self._turn:
                await self._in_thread(_checkpoint, self._side)
            self.restarts += 1

    async def _checkpoint_often(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            try:
                await self.checkpoint()
            except sqlite3.Error as exc:  # the next one tries again; the log grows meanwhile
                logger.warning("pipeline queue: checkpoint of the SQLite log failed: %s", exc)

    async def _in_thread(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)


def _connect(database: str, timeout_s: float) -> sqlite3.Connection:
    # Autocommit mode: the transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    db = sqlite3.connect(database, timeout=timeout_s, isolation_level=None)
    sqlite_pragmas(db, None)
    db.execute("PRAGMA wal_autocheckpoint=0")  # SqliteWrites.checkpoint's work, not a commit's
    return db


def _transaction(db: sqlite3.Connection, change: Change) -> Committed:
    db.execute("BEGIN IMMEDIATE")  # the write lock first: nothing to undo if it is taken
    try:
        committed = _write(db, change)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return committed


def _checkpoint(db: sqlite3.Connection) -> int:
    """A passive checkpoint (it takes no lock a writer waits for); the log's size in pages."""
    _busy, log_pages, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(log_pages)


def _write(db: sqlite3.Connection, change: Change) -> Committed:
    receipts = [
        (r.seq, r.request_id, r.delay_s, micros_of(r.receive_time), r.run_id, r.tries)
        for r in change.receipts
    ]
    for rows in _chunks(receipts):
        db.execute(INSERT + placeholders(len(rows), 6), list(chain(*rows)))
    for outcomes in _chunks(change.outcomes):
        db.execute(RECORD.format(values=placeholders(len(outcomes), 3)), list(chain(*outcomes)))
    recorded, order = list(change.outcomes), change.last_order
    for seq, error in change.unknown:
        if db.execute(RECORD_ONE, (order + 1, error, seq)).rowcount:
            order += 1
            recorded.append((seq, order, error))
    for seqs in _chunks(change.claimed):
        db.execute(ADD_TRY + "(" + ", ".join("?" * len(seqs)) + ")", seqs)
    forgot_all = True
    if change.forget_through:
        forgot_all = _forget(db, change.forget_through, order) < sql_rows.FORGET_BATCH
    return Committed(recorded, order, forgot_all)


def _forget(db: sqlite3.Connection, through: int, last_order: int) -> int:
    doomed = (through, last_order, sql_rows.FORGET_BATCH)
    per_run = db.execute(COUNT_DOOMED, doomed).fetchall()
    db.execute(DELETE, doomed)
    db.executemany(COUNT_FORGOTTEN, [(n, run) for run, n in per_run if run is not None])
    return sum(n for _, n in per_run)


def _chunks(rows: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(rows), CHUNK_ROWS):
        yield rows[start : start + CHUNK_ROWS]


def placeholders(rows: int, columns: int) -> str:
    """``(?, ?), (?, ?)`` for two rows of two columns."""
    row = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([row] * rows)
