"""The SQL queue's table work: rows to receipts and back, and the statements it runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from latlab.pipeline.receipts import Receipt, micros_of, moment_of
from latlab.storage.sql.tables import pipeline_receipts as table
from latlab.storage.sql.tables import pipeline_runs as runs

# Receipts dropped in one transaction: the acknowledgements sharing it wait for the delete
# (10,000 took 11-27 ms on SQLite at 5,000 req/s; 250 take about 1 ms).
FORGET_BATCH = 250


async def tops(conn: AsyncConnection) -> tuple[int, int]:
    """The last receipt number and the last outcome number in the table."""
    query = sa.select(sa.func.max(table.c.seq), sa.func.max(table.c.finished_order))
    last_seq, last_order = (await conn.execute(query)).one()
    return last_seq or 0, last_order or 0


async def insert(conn: AsyncConnection, receipts: Sequence[Receipt]) -> None:
    if receipts:
        await conn.execute(table.insert(), [row_of(receipt) for receipt in receipts])


async def add_tries(conn: AsyncConnection, seqs: Sequence[int]) -> None:
    if seqs:
        await conn.execute(
            table.update().where(table.c.seq.in_(seqs)).values(tries=table.c.tries + 1)
        )


async def record(conn: AsyncConnection, outcomes: Sequence[tuple[int, int, str | None]]) -> None:
    """``(seq, order, error)`` each; a receipt finished before keeps its first outcome."""
    if not outcomes:
        return
    update = (
        table.update()
        .where(table.c.seq == sa.bindparam("b_seq"), table.c.finished_order.is_(None))
        .values(finished_order=sa.bindparam("b_order"), error=sa.bindparam("b_error"))
    )
    rows = [{"b_seq": seq, "b_order": order, "b_error": error} for seq, order, error in outcomes]
    await conn.execute(update, rows)


async def record_one(conn: AsyncConnection, seq: int, order: int, error: str | None) -> bool:
    """Whether receipt ``seq`` existed unfinished and now has this outcome."""
    result = await conn.execute(
        table.update()
        .where(table.c.seq == seq, table.c.finished_order.is_(None))
        .values(finished_order=order, error=error)
    )
    return bool(result.rowcount)


async def forget(conn: AsyncConnection, through: int, last_order: int) -> int:
    """Drop up to ``FORGET_BATCH`` finished receipts up to ``through``; how many went. Kept:
    the one holding ``last_order`` (outcomes number on from it after a restart), and those of
    a run with no row in ``pipeline_runs`` yet; a run's dropped receipts are added to its
    ``forgotten`` count (``/api/v1/pipeline-runs`` counts them)."""
    doomed = (
        sa.select(table.c.seq, table.c.run_id)
        .where(
            table.c.seq <= through,
            table.c.finished_order < last_order,
            sa.or_(table.c.run_id.is_(None), table.c.run_id.in_(sa.select(runs.c.run_id))),
        )
        .order_by(table.c.seq)
        .limit(FORGET_BATCH)
    )
    found = (await conn.execute(doomed)).all()
    if not found:
        return 0
    await conn.execute(table.delete().where(table.c.seq.in_([row.seq for row in found])))
    per_run = Counter(row.run_id for row in found if row.run_id is not None)
    for run_id, count in per_run.items():
        await conn.execute(
            runs.update().where(runs.c.run_id == run_id).values(forgotten=runs.c.forgotten + count)
        )
    return len(found)


def after_seq(after: int, limit: int) -> sa.Select[Any]:
    return sa.select(table).where(table.c.seq > after).order_by(table.c.seq).limit(limit)


def unfinished_through(seq: int) -> sa.Select[Any]:
    return (
        sa.select(table)
        .where(table.c.finished_order.is_(None), table.c.seq <= seq)
        .order_by(table.c.seq)
    )


def after_order(order: int, limit: int) -> sa.Select[Any]:
    return (
        sa.select(table)
        .where(table.c.finished_order > order)
        .order_by(table.c.finished_order)
        .limit(limit)
    )


async def read(conn: AsyncConnection, query: sa.Select[Any]) -> list[tuple[Receipt, int | None]]:
    """The receipts ``query`` selects, each with its place in the outcome feed."""
    rows = (await conn.execute(query)).mappings().all()
    return [(receipt_of(row), row["finished_order"]) for row in rows]


def row_of(receipt: Receipt) -> dict[str, Any]:
    return {
        "seq": receipt.seq,
        "request_id": receipt.request_id,
        "delay_s": receipt.delay_s,
        "receive_time_us": micros_of(receipt.receive_time),
        "run_id": receipt.run_id,
        "tries": receipt.tries,
        "finished_order": None,
        "error": None,
    }


def receipt_of(row: Any) -> Receipt:
    return Receipt(
        seq=row["seq"],
        request_id=row["request_id"],
        delay_s=row["delay_s"],
        receive_time=moment_of(row["receive_time_us"]),
        run_id=row["run_id"],
        tries=row["tries"],
        done=row["finished_order"] is not None,
        error=row["error"],
    )
