"""Pipeline runs on SQL: one row per client call in ``pipeline_runs``; a run's received and
processed counts from the embedded queue's ``pipeline_receipts``, plus the run's receipts the
queue has dropped once written (``forgotten``).

The client writes a run's start and end (``start``, ``finish``), the writer what it wrote
(``add_written``, batched: at most twice a second); each makes the row if the other side has
not yet, so neither waits for the other. The end-to-end histogram is read, merged and written
back in one transaction, which on SQLite holds the whole database (the embedded queue's
commits wait): about a millisecond per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from latlab.measure.stats import LatencyHistogram
from latlab.storage.records import Page
from latlab.storage.sql.errors import translated
from latlab.storage.sql.tables import pipeline_receipts as receipts
from latlab.storage.sql.tables import pipeline_runs as runs


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """A stored run; ``received`` and ``processed`` are None when the store holds none of
    its receipts (its queue was Redis)."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    requests: int | None
    connections: int | None
    sent: int
    acked: int
    errors: int
    ack_payload: str | None
    written: int
    e2e_payload: str | None
    received: int | None = None
    processed: int | None = None


class PipelineRuns:
    """The ``pipeline_runs`` table on ``engine``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite

    @translated
    async def start(
        self, run_id: str, requests: int, connections: int, started_at: datetime
    ) -> None:
        given = {"started_at": started_at, "requests": requests, "connections": connections}
        await self._upsert(run_id, given, given)

    @translated
    async def finish(
        self,
        run_id: str,
        sent: int,
        acked: int,
        errors: int,
        ack_payload: str | None,
        finished_at: datetime,
    ) -> None:
        given: dict[str, Any] = {"sent": sent, "acked": acked, "errors": errors}
        given |= {"ack_histogram": ack_payload, "finished_at": finished_at}
        await self._upsert(run_id, {"started_at": finished_at, **given}, given)

    async def _upsert(self, run_id: str, new: dict[str, Any], update: dict[str, Any]) -> None:
        """Insert the run with ``new`` values, or set ``update`` on the one there."""
        insert = self._dialect.insert(runs).values(_new_row(run_id, **new))
        statement = insert.on_conflict_do_update(index_elements=[runs.c.run_id], set_=update)
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    @translated
    async def add_written(
        self, added: Mapping[str, tuple[int, LatencyHistogram]], seen_at: datetime
    ) -> None:
        """Add ``(lines, end-to-end latencies)`` to each run, in one transaction; a run not
        there yet is made, started ``seen_at``."""
        pending = {run_id: tally for run_id, tally in added.items() if tally[0] > 0}
        if not pending:
            return
        run_ids = sorted(pending)  # one order: two writers lock the same rows alike
        missing = [_new_row(run_id, started_at=seen_at) for run_id in run_ids]
        async with self._engine.begin() as conn:
            # A write first: on SQLite it takes the database's write lock before the read,
            # so no other write comes between the read and the update; PostgreSQL locks
            # the rows read (FOR UPDATE).
            await conn.execute(self._dialect.insert(runs).on_conflict_do_nothing(), missing)
            for run_id, written, payload in await conn.execute(_written_now(run_ids)):
                count, e2e = pending[run_id]
                update = runs.update().where(runs.c.run_id == run_id)
                merged = _merged(payload, e2e)
                await conn.execute(update.values(written=written + count, e2e_histogram=merged))

    @translated
    async def get(self, run_id: str) -> PipelineRun | None:
        async with self._engine.connect() as conn:
            found = (await conn.execute(runs.select().where(runs.c.run_id == run_id))).first()
            if found is None:
                return None
            return (await _with_counts(conn, [found]))[0]

    @translated
    async def page(self, offset: int, limit: int) -> Page[PipelineRun]:
        """Runs newest first."""
        query = (
            runs.select()
            .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
            .offset(offset)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            total = (await conn.execute(sa.select(sa.func.count()).select_from(runs))).scalar()
            found = (await conn.execute(query)).all()
            return Page(await _with_counts(conn, found), int(total or 0))


def _new_row(run_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run_id, "requests": None, "connections": None}
    row |= {"sent": 0, "acked": 0, "errors": 0, "written": 0}
    return row | values


def _merged(payload: str | None, added: LatencyHistogram) -> str | None:
    if added.count == 0:
        return payload
    if payload is None:
        return added.to_payload()
    merged = LatencyHistogram()
    merged.add_payload(payload)
    merged.merge(added)
    return merged.to_payload()


def _written_now(run_ids: list[str]) -> sa.Select[Any]:
    return (
        sa.select(runs.c.run_id, runs.c.written, runs.c.e2e_histogram)
        .where(runs.c.run_id.in_(run_ids))
        .order_by(runs.c.run_id)
        .with_for_update()
    )


async def _with_counts(conn: AsyncConnection, rows: Sequence[sa.Row[Any]]) -> list[PipelineRun]:
    """The runs of ``rows``, each with its counts of receipts (one query for all)."""
    run_ids = [row.run_id for row in rows]
    counts: dict[str, tuple[int, int]] = {}
    if run_ids:
        query = (
            sa.select(receipts.c.run_id, sa.func.count(), sa.func.count(receipts.c.finished_order))
            .where(receipts.c.run_id.in_(run_ids))
            .group_by(receipts.c.run_id)
        )
        counts = {run_id: (got, done) for run_id, got, done in await conn.execute(query)}
    return [_run(row, counts.get(row.run_id)) for row in rows]


def _run(row: sa.Row[Any], counts: tuple[int, int] | None) -> PipelineRun:
    """Counts: the run's receipts in the queue, plus those it forgot (received, processed)."""
    received = processed = None
    if counts is not None or row.forgotten:
        got, done = counts or (0, 0)
        received, processed = got + row.forgotten, done + row.forgotten
    return PipelineRun(
        run_id=row.run_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        requests=row.requests,
        connections=row.connections,
        sent=row.sent,
        acked=row.acked,
        errors=row.errors,
        ack_payload=row.ack_histogram,
        written=row.written,
        e2e_payload=row.e2e_histogram,
        received=received,
        processed=processed,
    )
