"""Per-job histograms on SQL: one row per ``(kind, job_id, bucket)`` in ``histograms``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from latlab.storage.records import HistogramUpdate
from latlab.storage.sql.errors import translated
from latlab.storage.sql.tables import histograms


class SqlHistograms:
    """Read here, written (replaced) by ``SqlStore.checkpoint`` in its transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(histograms)
        self._upsert = insert.on_conflict_do_update(
            index_elements=[histograms.c.kind, histograms.c.job_id, histograms.c.bucket],
            set_={"payload": insert.excluded.payload},
        )

    async def upsert(self, conn: AsyncConnection, updates: Sequence[HistogramUpdate]) -> None:
        """Replace each update's row in the caller's transaction.

        One update per key (``latest_histograms``): PostgreSQL refuses a statement that
        updates one row twice.
        """
        if not updates:
            return
        rows = [
            {"kind": u.kind, "job_id": u.job_id, "bucket": u.bucket, "payload": u.payload}
            for u in updates
        ]
        await conn.execute(self._upsert, rows)

    async def delete(self, conn: AsyncConnection, kind: str, job_id: int) -> None:
        """Delete a job's histograms in the caller's transaction."""
        where = (histograms.c.kind == kind, histograms.c.job_id == job_id)
        await conn.execute(delete(histograms).where(*where))

    @translated
    async def read(self, kind: str, job_id: int, first: int, last: int) -> dict[int, str]:
        # The primary key (kind, job_id, bucket) makes this one index range.
        query = (
            select(histograms.c.bucket, histograms.c.payload)
            .where(
                histograms.c.kind == kind,
                histograms.c.job_id == job_id,
                histograms.c.bucket.between(first, last),
            )
            .order_by(histograms.c.bucket)
        )
        async with self._engine.connect() as conn:
            return {bucket: payload for bucket, payload in await conn.execute(query)}
