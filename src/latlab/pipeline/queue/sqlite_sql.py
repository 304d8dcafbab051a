"""The SQL queue's statements and transaction on a SQLite file (``sqlite_writes`` runs it).

They are those of ``sql_rows``, written out for SQLite (the same contract tests run on
both), one statement per kind of write however many rows: the fixed cost of a statement is
most of a small transaction's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from itertools import chain
from typing import TypeVar

from latlab.pipeline.queue import sql_rows
from latlab.pipeline.queue.sql_writes import Change, Committed
from latlab.pipeline.receipts import micros_of

T = TypeVar("T")

CHUNK_ROWS = 150  # x 6 columns stays under SQLite's oldest limit of 999 parameters

INSERT = (
    "INSERT INTO pipeline_receipts (seq, request_id, delay_s, receive_time_us, run_id, tries)"
    " VALUES "
)
# A CTE, not UPDATE ... FROM: that needs SQLite 3.33 (2020), this 3.8.3.
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


def transaction(db: sqlite3.Connection, change: Change) -> Committed:
    """``change`` in one transaction on ``db`` (autocommit mode), or nothing of it."""
    db.execute("BEGIN IMMEDIATE")  # the write lock first: nothing to undo if it is taken
    try:
        committed = _write(db, change)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return committed


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
