"""``SqlStore``: the storage port on SQLAlchemy Core (SQLite, PostgreSQL); streams: results.py,
histograms: histograms.py."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Self

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from latlab.storage.base import JobNotFound, StateConflict
from latlab.storage.records import (
    HistogramUpdate,
    JobRecord,
    JobState,
    Page,
    ProbeResult,
    ProgressUpdate,
    Record,
    SiteResult,
    by_kind,
    fenced_histograms,
    fenced_records,
    gone,
    latest_histograms,
    utc_now,
)
from latlab.storage.sql.engine import create_engine, migrate
from latlab.storage.sql.errors import translated, unstorable
from latlab.storage.sql.histograms import SqlHistograms
from latlab.storage.sql.pipeline_runs import PipelineRuns
from latlab.storage.sql.progress import save_progress
from latlab.storage.sql.results import SqlProbeResults, SqlResults, SqlSiteResults
from latlab.storage.sql.tables import job_counters, jobs, values

_migrate = translated(migrate)


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


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self.probe_results = SqlProbeResults(engine)
        self.histograms = SqlHistograms(engine)
        self.pipeline_runs = PipelineRuns(engine)  # read by /api/v1/pipeline-runs
        # A new kind of record: its stream here, under its kind.
        self.site_results = SqlSiteResults(engine)
        self._streams: dict[str, SqlResults[Any]] = {
            ProbeResult.kind: self.probe_results,
            SiteResult.kind: self.site_results,
        }
        upsert = dialect.insert(values)
        self._upsert_value = upsert.on_conflict_do_update(
            index_elements=[values.c.key],
            set_={"value": upsert.excluded.value, "updated_at": upsert.excluded.updated_at},
        )
        self._insert_jobs = insert(jobs).returning(jobs.c.id)
        # One statement takes a block of ids: the row lock it holds until commit keeps
        # concurrent creators apart, and a rollback gives the block back.
        reserve = dialect.insert(job_counters)
        self._reserve_ids = reserve.on_conflict_do_update(
            index_elements=[job_counters.c.kind],
            set_={"last_id": job_counters.c.last_id + reserve.excluded.last_id},
        ).returning(job_counters.c.last_id)

    @classmethod
    async def open(cls, url: str) -> Self:
        engine = create_engine(url)
        try:
            await _migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def create_job(self, kind: str, spec: Mapping[str, Any]) -> JobRecord:
        (job,) = await self.create_jobs(kind, [spec])
        return job

    @translated
    async def create_jobs(
        self,
        kind: str,
        specs: Sequence[Mapping[str, Any]],
        *,
        state: JobState = JobState.CREATED,
    ) -> list[JobRecord]:
        if not specs:
            return []
        now = utc_now()
        try:
            async with self._engine.begin() as conn:
                reserved = {"kind": kind, "last_id": len(specs)}
                last_id = (await conn.execute(self._reserve_ids, reserved)).scalar_one()
                first_id = last_id - len(specs) + 1
                created = [
                    JobRecord(first_id + i, kind, state, dict(spec), {}, None, now, now)
                    for i, spec in enumerate(specs)
                ]
                await self._write_jobs(conn, created)
        except StatementError as exc:
            error = unstorable(exc)
            if error is None:
                raise
            raise error from exc
        return created

    async def _write_jobs(self, conn: AsyncConnection, created: Sequence[JobRecord]) -> None:
        rows = [
            {
                "kind": job.kind,
                "id": job.id,
                "state": job.state.value,
                "spec": job.spec,
                "progress": job.progress,
                "error": None,
                "created_at": job.created_at,
                "updated_at": job.updated_at,
            }
            for job in created
        ]
        # RETURNING makes SQLAlchemy send multi-row INSERT ... VALUES statements (its
        # "insertmanyvalues": 1,000 rows or 32,700 parameters a statement, within SQLite's limit)
        # instead of one statement per row.
        await conn.execute(self._insert_jobs, rows)

    @translated
    async def get_job(self, kind: str, job_id: int) -> JobRecord:
        async with self._engine.connect() as conn:
            return await self._get(conn, kind, job_id)

    async def _get(self, conn: AsyncConnection, kind: str, job_id: int) -> JobRecord:
        query = select(jobs).where(jobs.c.kind == kind, jobs.c.id == job_id)
        row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise JobNotFound(kind, job_id)
        return _job(row)

    @translated
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

    @translated
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
                jobs.c.kind == kind,
                jobs.c.id == job_id,
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

    @translated
    async def checkpoint(
        self,
        records: Sequence[Record],
        progress: Sequence[ProgressUpdate],
        histograms: Sequence[HistogramUpdate] = (),
    ) -> set[tuple[str, int]]:
        latest = latest_histograms(histograms)
        async with self._engine.begin() as conn:
            # Progress first: the fence decides which jobs' records and histograms may land.
            # The histograms' jobs are locked with it, so none is deleted under them.
            saved = await save_progress(conn, progress, {(u.kind, u.job_id) for u in latest})
            dropped = saved.dropped | gone(progress, saved.found)
            for kind, kept in by_kind(fenced_records(records, dropped)).items():
                await self._streams[kind].insert(conn, kept)
            landing = fenced_histograms(latest, dropped)
            await self.histograms.upsert(
                conn, [u for u in landing if (u.kind, u.job_id) in saved.found]
            )
        return dropped

    @translated
    async def delete_job(self, kind: str, job_id: int) -> None:
        async with self._engine.begin() as conn:
            await self._get(conn, kind, job_id)
            if kind in self._streams:
                await self._streams[kind].delete(conn, job_id)
            await conn.execute(delete(jobs).where(jobs.c.kind == kind, jobs.c.id == job_id))
            # After the job row: that delete waits for a checkpoint holding the row, so this
            # one sees the histograms it wrote (no foreign key cascades them).
            await self.histograms.delete(conn, kind, job_id)

    @translated
    async def get_value(self, key: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            found = await conn.execute(select(values.c.value).where(values.c.key == key))
            value = found.scalar_one_or_none()
        return None if value is None else dict(value)

    @translated
    async def set_value(self, key: str, value: Mapping[str, Any]) -> None:
        row = {"key": key, "value": dict(value), "updated_at": utc_now()}
        async with self._engine.begin() as conn:
            await conn.execute(self._upsert_value, row)

    @translated
    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(select(1))

    async def close(self) -> None:
        await self._engine.dispose()
