"""The pipeline records its runs in the SQL store, and a failure to record stops nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import httpx
import pytest

from latlab.pipeline.services import ALL_ROLES, Pipeline, Role, open_pipeline
from latlab.storage.sql.store import SqlStore
from pipeline_files import pipeline_settings, wait_for_results

QUERY = "connection_count=4&connection_value=40&delay_range=5&delay_unit=ms"


async def call_client(pipeline: Pipeline) -> dict[str, object]:
    base = f"http://127.0.0.1:{pipeline.port(Role.CLIENT)}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.get(f"/?{QUERY}")
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


async def test_what_is_written_is_in_the_store_once_the_pipeline_stops(tmp_path: Path) -> None:
    settings = pipeline_settings(tmp_path)
    async with open_pipeline(settings, ALL_ROLES) as pipeline:
        run_id = str((await call_client(pipeline))["run_id"])
        await wait_for_results(tmp_path / "out", 40)
    store = await SqlStore.open(settings.storage_url)
    try:
        run = await store.pipeline_runs.get(run_id)
    finally:
        await store.close()
    assert run is not None
    assert (run.acked, run.written, run.received, run.processed) == (40, 40, 40, 40)


async def test_a_store_that_cannot_record_runs_stops_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_pipeline(pipeline_settings(tmp_path), ALL_ROLES) as pipeline:
        with contextlib.closing(sqlite3.connect(tmp_path / "latlab.db")) as db:
            db.execute("DROP TABLE pipeline_runs")  # every record from now on fails
        run = await call_client(pipeline)
        assert (run["acked"], run["errors"]) == (40, 0)
        await wait_for_results(tmp_path / "out", 40)
    failures = {
        r.getMessage().split(" for ")[0] for r in caplog.records if r.levelname == "WARNING"
    }
    run_id = run["run_id"]
    assert failures == {
        f"recording the start of run {run_id}",
        f"recording the end of run {run_id}",
        "recording the written results",
    }


async def test_a_client_on_a_store_that_is_not_sql_records_nothing(tmp_path: Path) -> None:
    settings = pipeline_settings(tmp_path).model_copy(update={"storage_url": "memory://"})
    async with open_pipeline(settings, [Role.CLIENT]) as pipeline:
        assert pipeline.recorder is not None
        assert not pipeline.recorder.enabled
