"""Per-kind ids on existing data: SQL revision 0003 on a SQLite file written by revision 0002
with real rows (and back down to 0002), and MongoDB's per-kind counters next to the old
shared one; revisions 0004 (histograms), 0005 (the pipeline's queue and runs), 0006 (a run's
forgotten receipts) and 0007 (the results of series at a location) up and down."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import create_async_engine
from store_samples import site_result

from latlab.storage import TOTAL_BUCKET, HistogramUpdate, JobState, open_store
from latlab.storage.sql.engine import alembic_config
from latlab.storage.sql.store import SqlStore
from latlab.storage.sql.tables import UtcDateTime, pipeline_runs

HEAD = "0007"  # the newest revision

_OLD_JOBS = [  # kinds interleaved on the shared sequence, as revision 0002 handed them out
    (1, "probe", "completed", '{"host": "a"}', '{"done": 2}'),
    (2, "bot", "running", '{"start_number": 3}', '{"number": 9}'),
    (3, "probe", "running", '{"host": "b"}', '{"done": 1}'),
    (4, "bot", "stopped", '{"start_number": 1}', "{}"),
    (5, "probe", "created", '{"host": "c"}', "{}"),
    (6, "probe", "created", "{}", "{}"),  # deleted below: 6 must not come back
]
_OLD_RESULTS = [(1, 0, 1.5), (1, 1, -1.0), (3, 0, 2.5)]
_T = "2026-01-02 03:04:05.678000"
_INSERT_JOB = "INSERT INTO jobs VALUES (:id, :kind, :state, :spec, :progress, NULL, :t, :t)"
_INSERT_RESULT = (
    "INSERT INTO probe_results VALUES (:id, :seq, 200, :ms, :t, :t, NULL, NULL, NULL, NULL)"
)


def _write_revision_0002(path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
        for job_id, kind, state, spec, progress in _OLD_JOBS:
            conn.execute(
                sa.text(_INSERT_JOB),
                {
                    "id": job_id,
                    "kind": kind,
                    "state": state,
                    "spec": spec,
                    "progress": progress,
                    "t": _T,
                },
            )
        for job_id, seq, latency_ms in _OLD_RESULTS:
            conn.execute(
                sa.text(_INSERT_RESULT),
                {"id": job_id, "seq": seq, "ms": latency_ms, "t": _T},
            )
        conn.execute(sa.text("DELETE FROM jobs WHERE id = 6"))
    engine.dispose()


async def test_upgrade_keeps_jobs_results_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _write_revision_0002(path)
    store = await SqlStore.open(f"sqlite+aiosqlite:///{path}")
    try:
        probes = await store.list_jobs("probe")
        bots = await store.list_jobs("bot")
        assert [(j.id, j.spec, j.progress) for j in probes.items] == [
            (1, {"host": "a"}, {"done": 2}),
            (3, {"host": "b"}, {"done": 1}),
            (5, {"host": "c"}, {}),
        ]
        assert [(j.id, j.state) for j in bots.items] == [
            (2, JobState.RUNNING),
            (4, JobState.STOPPED),
        ]
        assert await store.probe_results.latencies_ms(1) == [1.5, -1.0]
        assert await store.probe_results.latencies_ms(3) == [2.5]
        assert (
            await store.get_job("probe", 1)
        ).created_at.isoformat() == "2026-01-02T03:04:05.678000+00:00"
    finally:
        await store.close()


async def test_new_ids_continue_per_kind_after_the_old_high_water_mark(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _write_revision_0002(path)
    store = await SqlStore.open(f"sqlite+aiosqlite:///{path}")
    try:
        # 6 was handed out (then deleted) by the shared sequence: no kind that existed gets it.
        assert [j.id for j in await store.create_jobs("probe", [{}, {}])] == [7, 8]
        assert (await store.create_job("bot", {})).id == 7
        assert (await store.create_job("load", {})).id == 1  # a kind with no jobs yet
        assert (await store.create_job("probe", {})).id == 9
    finally:
        await store.close()


async def test_deleting_a_migrated_probe_cascades_to_its_results_only(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _write_revision_0002(path)
    store = await SqlStore.open(f"sqlite+aiosqlite:///{path}")
    try:
        await store.delete_job("probe", 1)
        assert await store.probe_results.count(1) == 0
        assert await store.probe_results.count(3) == 1
    finally:
        await store.close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        keys = conn.execute(sa.text("PRAGMA foreign_key_list('probe_results')")).all()
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert {(key.table, key.on_delete) for key in keys} == {("jobs", "CASCADE")}
    assert version == HEAD


async def test_mongo_kind_counters_start_after_the_old_shared_counter(mongo_base_url: str) -> None:
    url = f"{mongo_base_url}/t_{secrets.token_hex(4)}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        # A store written before ids were per kind: one shared counter, left as it is.
        await client.get_default_database()["counters"].insert_one({"_id": "jobs", "seq": 41})
        store = await open_store(url)
        try:
            assert (await store.create_job("bot", {})).id == 42
            assert [j.id for j in await store.create_jobs("probe", [{}, {}])] == [42, 43]
            assert (await store.create_job("bot", {})).id == 43
        finally:
            await store.close()
        legacy = await client.get_default_database()["counters"].find_one({"_id": "jobs"})
        assert legacy == {"_id": "jobs", "seq": 41}
    finally:
        await client.close()


async def _migrate(url: str, step: str, revision: str) -> None:
    """Run ``alembic upgrade|downgrade revision`` on the database at ``url``."""

    def run(conn: sa.Connection) -> None:
        getattr(command, step)(alembic_config(conn), revision)

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_downgrade_returns_to_one_sequence_after_every_id_handed_out(
    store_url: str,
) -> None:
    store = await SqlStore.open(store_url)
    try:
        await store.create_jobs("probe", [{}, {}, {}])  # probe 1, 2, 3
        await store.delete_job("probe", 3)  # 3 was handed out: it must not come back
    finally:
        await store.close()
    await _migrate(store_url, "downgrade", "0002")
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            insert = "INSERT INTO jobs (kind, state, spec, progress, created_at, updated_at) "
            values = "VALUES ('bot', 'created', '{}', '{}', :t, :t) RETURNING id"
            now = sa.bindparam("t", datetime.now(UTC), type_=UtcDateTime)
            new_id = (await conn.execute(sa.text(insert + values).bindparams(now))).scalar()
            kinds = (await conn.execute(sa.text("SELECT kind, id FROM jobs ORDER BY id"))).all()
    finally:
        await engine.dispose()
    assert new_id == 4
    assert [tuple(row) for row in kinds] == [("probe", 1), ("probe", 2), ("bot", 4)]
    await _migrate(store_url, "upgrade", "head")  # and back up: the data survives both ways
    store = await SqlStore.open(store_url)
    try:
        assert (await store.create_job("bot", {})).id == 5
    finally:
        await store.close()


async def test_downgrade_refuses_ids_shared_across_kinds_and_changes_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}"
    store = await SqlStore.open(url)
    try:
        await store.create_job("probe", {})
        await store.create_job("bot", {})  # both are 1
    finally:
        await store.close()
    with pytest.raises(RuntimeError, match=r"share ids \[1\]"):
        await _migrate(url, "downgrade", "0002")
    store = await SqlStore.open(url)
    try:
        assert [(await store.list_jobs(kind)).total for kind in ("probe", "bot")] == [1, 1]
    finally:
        await store.close()


async def _tables_and_version(url: str) -> tuple[set[str], str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
            found = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            version = found.scalar()
    finally:
        await engine.dispose()
    return names, str(version)


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_0004_adds_histograms_and_downgrades_to_0003_keeping_the_jobs(
    store_url: str,
) -> None:
    store = await SqlStore.open(store_url)
    try:
        job = await store.create_job("probe", {"host": "a"})
        await store.checkpoint([], [], [HistogramUpdate("probe", job.id, TOTAL_BUCKET, "h")])
    finally:
        await store.close()
    assert await _tables_and_version(store_url) == (
        {"alembic_version", "jobs", "job_counters", "probe_results", "values", "histograms"}
        | {"pipeline_receipts", "pipeline_runs", "site_results"},
        HEAD,
    )
    await _migrate(store_url, "downgrade", "0003")
    names, version = await _tables_and_version(store_url)
    assert ("histograms" in names, version) == (False, "0003")
    await _migrate(store_url, "upgrade", "head")
    store = await SqlStore.open(store_url)
    try:
        assert (await store.get_job("probe", job.id)).spec == {"host": "a"}
        assert await store.histograms.read("probe", job.id, TOTAL_BUCKET, 0) == {}
        await store.checkpoint([], [], [HistogramUpdate("probe", job.id, 0, "again")])
        assert await store.histograms.read("probe", job.id, TOTAL_BUCKET, 0) == {0: "again"}
    finally:
        await store.close()


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_0005_adds_the_pipeline_queue_and_runs_and_downgrades_to_0004_keeping_the_rest(
    store_url: str,
) -> None:
    store = await SqlStore.open(store_url)
    await store.close()
    pipeline = {"pipeline_receipts", "pipeline_runs"}
    names, version = await _tables_and_version(store_url)
    assert (pipeline <= names, version) == (True, HEAD)
    await _migrate(store_url, "downgrade", "0004")
    names, version = await _tables_and_version(store_url)
    assert (pipeline & names, "histograms" in names, version) == (set(), True, "0004")
    await _migrate(store_url, "upgrade", "head")  # the indexes went with their tables
    names, version = await _tables_and_version(store_url)
    assert (pipeline <= names, version) == (True, HEAD)


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_0006_counts_a_runs_forgotten_receipts_and_downgrades_keeping_its_runs(
    store_url: str,
) -> None:
    store = await SqlStore.open(store_url)
    await store.close()
    run_id = f"run-{secrets.token_hex(4)}"
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                pipeline_runs.insert().values(
                    run_id=run_id, started_at=datetime.now(UTC), sent=0, acked=0, errors=0
                )
            )
            await conn.execute(pipeline_runs.update().values(forgotten=7))
    finally:
        await engine.dispose()
    await _migrate(store_url, "downgrade", "0005")
    assert "forgotten" not in await _columns(store_url, "pipeline_runs")
    await _migrate(store_url, "upgrade", "head")
    assert "forgotten" in await _columns(store_url, "pipeline_runs")
    assert await _runs_forgotten(store_url, run_id) == 0  # the run stayed, its count reset


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_0007_adds_the_series_results_and_downgrades_to_0006_keeping_the_jobs(
    store_url: str,
) -> None:
    store = await SqlStore.open(store_url)
    try:
        site = await store.create_job("probe_site", {"experiment": 1, "location": "eu-1"})
        await store.checkpoint([site_result(site.id, 0)], [])
    finally:
        await store.close()
    await _migrate(store_url, "downgrade", "0006")
    names, version = await _tables_and_version(store_url)
    assert ("site_results" in names, version) == (False, "0006")
    await _migrate(store_url, "upgrade", "head")
    store = await SqlStore.open(store_url)
    try:
        assert (await store.get_job("probe_site", site.id)).spec["location"] == "eu-1"
        assert await store.site_results.count(site.id) == 0  # gone with their table
        await store.checkpoint([site_result(site.id, 0)], [])
        assert [r.location for r in await store.site_results.list(site.id)] == ["eu-1"]
    finally:
        await store.close()


async def _columns(url: str, table: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda sync: sa.inspect(sync).get_columns(table))
    finally:
        await engine.dispose()
    return {column["name"] for column in found}


async def _runs_forgotten(url: str, run_id: str) -> int | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.select(pipeline_runs.c.forgotten).where(pipeline_runs.c.run_id == run_id)
            return (await conn.execute(query)).scalar()
    finally:
        await engine.dispose()
