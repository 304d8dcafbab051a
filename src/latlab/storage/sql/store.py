"""``SqlStore``: the storage port on SQLAlchemy Core (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Self

from sqlalchemy import Row, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from latlab.storage.base import JobNotFound, StateConflict
from latlab.storage.records import (
    JobRecord,
    JobState,
    Page,
    ProbeResult,
    ProgressUpdate,
    utc_now,
)
from latlab.storage.sql.engine import create_engine, migrate
from latlab.storage.sql.tables import jobs, probe_results, values

_RESULT_COLUMNS = [c for c in probe_results.c]
_PROGRESS_CHUNK = 10_000


def _job(row: Row[Any]) -> JobRecord:
    return JobRecord(
        id=row.id,
        kind=row.kind,
        state=JobState(row.state),
        spec=row.spec,
        progress=row.progress,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _result(row: Row[Any]) -> ProbeResult:
    return ProbeResult(**row._asdict())


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        # Re-written results (a probe redone after a crash) must not duplicate or fail.
        self._insert_results = dialect.insert(probe_results).on_conflict_do_nothing()
        upsert = dialect.insert(values)
        self._upsert_value = upsert.on_conflict_do_update(
            index_elements=[values.c.key],
            set_={"value": upsert.excluded.value, "updated_at": upsert.excluded.updated_at},
        )

    @classmethod
    async def open(cls, url: str) -> Self:
        engine = create_engine(url)
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def create_job(self, kind: str, spec: Mapping[str, Any]) -> JobRecord:
        now = utc_now()
        values = {
            "kind": kind,
            "state": JobState.CREATED.value,
            "spec": dict(spec),
            "progress": {},
            "created_at": now,
            "updated_at": now,
        }
        async with self._engine.begin() as conn:
            row = (await conn.execute(insert(jobs).values(values).returning(*jobs.c))).one()
        return _job(row)

    async def get_job(self, kind: str, job_id: int) -> JobRecord:
        async with self._engine.connect() as conn:
            return await self._get(conn, kind, job_id)

    async def _get(self, conn: AsyncConnection, kind: str, job_id: int) -> JobRecord:
        query = select(jobs).where(jobs.c.id == job_id, jobs.c.kind == kind)
        row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise JobNotFound(kind, job_id)
        return _job(row)

    async def list_jobs(
        self,
        kind: str,
        *,
        states: Collection[JobState] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> Page[JobRecord]:
        where = [jobs.c.kind == kind]
        if states is not None:
            where.append(jobs.c.state.in_([s.value for s in states]))
        query = select(jobs).where(*where).order_by(jobs.c.id).offset(offset).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            total = (await conn.execute(select(func.count()).where(*where))).scalar_one()
        return Page(items=[_job(row) for row in rows], total=total)

    async def set_state(
        self,
        kind: str,
        job_id: int,
        state: JobState,
        *,
        expected: Collection[JobState],
        error: str | None = None,
    ) -> JobRecord:
        query = (
            update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.kind == kind,
                jobs.c.state.in_([s.value for s in expected]),
            )
            .values(state=state.value, error=error, updated_at=utc_now())
            .returning(*jobs.c)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(query)).one_or_none()
            if row is None:
                raise StateConflict(await self._get(conn, kind, job_id))
        return _job(row)

    async def checkpoint(
        self,
        results: Sequence[ProbeResult],
        progress: Sequence[ProgressUpdate],
    ) -> None:
        async with self._engine.begin() as conn:
            if results:
                rows = [{c.name: getattr(r, c.name) for c in _RESULT_COLUMNS} for r in results]
                await conn.execute(self._insert_results, rows)
            # Chunked: SQLite takes at most 32,766 parameters in one statement.
            for start in range(0, len(progress), _PROGRESS_CHUNK):
                await self._save_progress(conn, progress[start : start + _PROGRESS_CHUNK])

    async def _save_progress(
        self, conn: AsyncConnection, progress: Sequence[ProgressUpdate]
    ) -> None:
        wanted = {(u.kind, u.job_id): u.values for u in progress}
        ids = [u.job_id for u in progress]
        current = await conn.execute(
            select(jobs.c.id, jobs.c.kind, jobs.c.progress).where(jobs.c.id.in_(ids))
        )
        now = utc_now()
        rows = [
            {"job_id": job_id, "progress": {**old, **wanted[(kind, job_id)]}, "now": now}
            for job_id, kind, old in current
            if (kind, job_id) in wanted
        ]
        if rows:
            query = (
                update(jobs)
                .where(jobs.c.id == bindparam("job_id"))
                .values(progress=bindparam("progress"), updated_at=bindparam("now"))
            )
            await conn.execute(query, rows)

    async def delete_job(self, kind: str, job_id: int) -> None:
        async with self._engine.begin() as conn:
            await self._get(conn, kind, job_id)
            await conn.execute(delete(probe_results).where(probe_results.c.job_id == job_id))
            await conn.execute(delete(jobs).where(jobs.c.id == job_id))

    async def list_results(
        self, job_id: int, *, offset: int = 0, limit: int | None = None
    ) -> list[ProbeResult]:
        # seq has no gaps, so a page starts at seq == offset: an index seek, never a scan.
        query = (
            select(probe_results)
            .where(probe_results.c.job_id == job_id, probe_results.c.seq >= offset)
            .order_by(probe_results.c.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [_result(row) for row in await conn.execute(query)]

    async def count_results(self, job_id: int) -> int:
        query = select(func.count()).where(probe_results.c.job_id == job_id)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def latencies_ms(self, job_id: int) -> list[float]:
        query = (
            select(probe_results.c.latency_ms)
            .where(probe_results.c.job_id == job_id)
            .order_by(probe_results.c.seq)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def get_value(self, key: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            found = await conn.execute(select(values.c.value).where(values.c.key == key))
            value = found.scalar_one_or_none()
        return None if value is None else dict(value)

    async def set_value(self, key: str, value: Mapping[str, Any]) -> None:
        row = {"key": key, "value": dict(value), "updated_at": utc_now()}
        async with self._engine.begin() as conn:
            await conn.execute(self._upsert_value, row)

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(select(1))

    async def close(self) -> None:
        await self._engine.dispose()
