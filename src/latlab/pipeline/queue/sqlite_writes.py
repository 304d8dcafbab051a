"""The SQL queue's transactions on a SQLite file: a thread of its own, one call each.

The event loop hands the whole transaction over at once and gets one answer back, however
many statements it holds; the thread's connection is the only one that writes the queue's
rows (readers go through the store's engine: WAL lets them read beside it). The statements
are those of ``sql_rows``, written out for SQLite: the same contract tests run on both.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Self, TypeVar

from sqlalchemy.engine import URL

from latlab.pipeline.queue import sql_rows
from latlab.pipeline.queue.sql_writes import Change, Committed
from latlab.pipeline.receipts import micros_of
from latlab.storage.sql.engine import SQLITE_BUSY_TIMEOUT_S, sqlite_pragmas

# One statement per kind of write, however many rows: sqlite3 lets the GIL go and takes it
# back at every step, and a step per row (executemany) made the thread wait for the busy
# event loop's GIL hundreds of times a transaction (250 deletes: 5-9 ms instead of ~1).
T = TypeVar("T")
CHUNK_ROWS = 150  # x 6 columns stays under SQLite's oldest limit of 999 parameters

INSERT = (
    "INSERT INTO pipeline_receipts (seq, request_id, delay_s, receive_time_us, run_id, tries)"
    " VALUES "
)
# A CTE, not UPDATE ... FROM (SQLite 3.33+): any SQLite Python 3.11 may be linked with.
RECORD = (
    "WITH outcome(o_seq, o_order, o_error) AS (VALUES {values})"
    " UPDATE pipeline_receipts"
    " SET finished_order = (SELECT o_order FROM outcome WHERE o_seq = seq),"
    " error = (SELECT o_error FROM outcome WHERE o_seq = seq)"
    " WHERE seq IN (SELECT o_seq FROM outcome) AND finished_order IS NULL"
)
RECORD_ONE = (
    "UPDATE pipeline_receipts SET finished_order = ?, error = ?"
    " WHERE seq = ? AND finished_order IS NULL"
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

    def __init__(self, thread: ThreadPoolExecutor, db: sqlite3.Connection) -> None:
        self._thread = thread
        self._db = db

    @classmethod
    async def open(cls, url: URL) -> Self:
        """On the file of ``url`` (a ``sqlite+aiosqlite`` URL naming a file)."""
        timeout_s = float(str(url.query.get("timeout", SQLITE_BUSY_TIMEOUT_S)))
        thread = ThreadPoolExecutor(1, thread_name_prefix="latlab-pipeline-sqlite")
        try:
            db = await asyncio.get_running_loop().run_in_executor(
                thread, _connect, url.database or "", timeout_s
            )
        except BaseException:
            thread.shutdown()
            raise
        return cls(thread, db)

    async def commit(self, change: Change) -> Committed:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._apply, change)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        self._thread.shutdown()

    def _apply(self, change: Change) -> Committed:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            committed = _write(db, change)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return committed


def _connect(database: str, timeout_s: float) -> sqlite3.Connection:
    # Autocommit mode: the transactions are the explicit BEGIN IMMEDIATE ... COMMIT above.
    db = sqlite3.connect(database, timeout=timeout_s, isolation_level=None)
    sqlite_pragmas(db, None)
    return db


def _write(db: sqlite3.Connection, change: Change) -> Committed:
    receipts = [
        (r.seq, r.request_id, r.delay_s, micros_of(r.receive_time), r.run_id, r.tries)
        for r in change.receipts
    ]
    for rows in _chunks(receipts):
        db.execute(INSERT + _places(len(rows), 6), list(chain(*rows)))
    for outcomes in _chunks(change.outcomes):
        db.execute(RECORD.format(values=_places(len(outcomes), 3)), list(chain(*outcomes)))
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


def _places(rows: int, columns: int) -> str:
    """``(?, ?), (?, ?)`` for two rows of two columns."""
    row = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([row] * rows)
