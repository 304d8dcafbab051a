"""Result streams on SQL: one class per kind of record, each over its own table.

A kind's table has the record's fields as columns, the key ``(job_id, seq)`` and a ``kind``
column that lets the foreign key ``(kind, job_id) → jobs(kind, id)`` cascade a delete.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Generic

from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from latlab.storage.records import ProbeResult, R, SiteResult
from latlab.storage.sql.errors import translated
from latlab.storage.sql.tables import probe_results, site_results


class SqlResults(Generic[R]):
    """One kind's records in ``table``: read here, written by ``SqlStore.checkpoint``."""

    def __init__(
        self, engine: AsyncEngine, kind: str, table: Table, record: Callable[..., R]
    ) -> None:
        self._engine = engine
        self._kind = kind
        self._table = table
        self._record = record
        self._columns = [c for c in table.c if c.name != "kind"]
        self._names = [c.name for c in self._columns]
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        # Re-written records (a probe redone after a crash) must not duplicate or fail.
        self._insert = dialect.insert(table).on_conflict_do_nothing()

    async def insert(self, conn: AsyncConnection, records: Sequence[R]) -> None:
        """Write ``records`` in the caller's transaction; those already stored are kept."""
        rows = [
            {"kind": self._kind, **{c.name: getattr(r, c.name) for c in self._columns}}
            for r in records
        ]
        await conn.execute(self._insert, rows)

    async def delete(self, conn: AsyncConnection, job_id: int) -> None:
        """Delete a job's records in the caller's transaction."""
        # The foreign key cascades too; saying it keeps the delete an index range.
        table = self._table
        await conn.execute(
            delete(table).where(table.c.kind == self._kind, table.c.job_id == job_id)
        )

    @translated
    async def list(
        self, job_id: int, *, offset: int = 0, limit: int | None = None
    ) -> builtins.list[R]:
        # seq has no gaps, so a page starts at seq == offset: an index seek, never a scan.
        query = (
            select(*self._columns)
            .where(self._table.c.job_id == job_id, self._table.c.seq >= offset)
            .order_by(self._table.c.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        # Rows are tuples: zipped with the names they take half the time of Row._asdict().
        names, record = self._names, self._record
        return [record(**dict(zip(names, row, strict=True))) for row in rows]

    @translated
    async def count(self, job_id: int) -> int:
        query = select(func.count()).where(self._table.c.job_id == job_id)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


class SqlProbeResults(SqlResults[ProbeResult]):
    """Probe results, in ``probe_results``."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, ProbeResult.kind, probe_results, ProbeResult)

    @translated
    async def latencies_ms(self, job_id: int) -> list[float]:
        query = (
            select(probe_results.c.latency_ms)
            .where(probe_results.c.job_id == job_id)
            .order_by(probe_results.c.seq)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())


class SqlSiteResults(SqlResults[SiteResult]):
    """The results of experiments' series at one location each, in ``site_results``."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, SiteResult.kind, site_results, SiteResult)
