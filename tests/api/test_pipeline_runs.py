"""REST v1 pipeline runs: ``pipeline up`` and the control API on one SQLite store; a client
call becomes a run the API shows, counted at every step, with its latency percentiles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import run_api, wait_for
from latlab.pipeline.services import ALL_ROLES, Pipeline, Role, open_pipeline
from latlab.settings import Settings
from pipeline_files import pipeline_settings, wait_for_results
from sse import rest

RUNS = "/api/v1/pipeline-runs"


@pytest.fixture
async def api_and_pipeline(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Pipeline]]:
    settings = pipeline_settings(tmp_path)
    async with (
        run_api(Settings(storage_url=settings.storage_url, freeze_gc=False)) as api,
        open_pipeline(settings, ALL_ROLES) as pipeline,
    ):
        yield api, pipeline


async def client_call(pipeline: Pipeline, query: str) -> dict[str, Any]:
    base = f"http://127.0.0.1:{pipeline.port(Role.CLIENT)}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.get(f"/?{query}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def written_run(pipeline: Pipeline, query: str, out_dir: Path, count: int) -> str:
    """A client call's run id, once its ``count`` result lines are in ``out_dir``."""
    run_id: str = (await client_call(pipeline, query))["run_id"]
    await wait_for_results(out_dir, count)
    return run_id


async def pipeline_run(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await api.get(f"{RUNS}/{run_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def assert_ordered(percentiles: dict[str, float] | None) -> None:
    assert percentiles is not None
    assert 0 < percentiles["p50"] <= percentiles["p90"] <= percentiles["p99"]
    assert percentiles["p99"] <= percentiles["max"]


async def test_a_client_call_is_a_run_counted_at_every_step(
    api_and_pipeline: tuple[httpx.AsyncClient, Pipeline], tmp_path: Path
) -> None:
    api, pipeline = api_and_pipeline
    query = "connection_count=5&connection_value=50&delay_range=20&delay_unit=ms"
    run_id = await written_run(pipeline, query, tmp_path / "out", 50)

    async def all_written() -> bool:
        return bool((await pipeline_run(api, run_id))["written"] == 50)

    await wait_for(all_written, 10, f"run {run_id}'s 50 lines in the store")
    run = await pipeline_run(api, run_id)
    counts = ("requests", "sent", "acked", "received", "processed", "written")
    assert {name: run[name] for name in counts} == dict.fromkeys(counts, 50)
    assert (run["connections"], run["errors"]) == (5, 0)
    assert run["started_at"] <= run["finished_at"]
    assert_ordered(run["ack_latency_ms"])
    assert_ordered(run["end_to_end_latency_ms"])
    listed = (await api.get(RUNS)).json()
    assert (listed["count"], [found["run_id"] for found in listed["data"]]) == (1, [run_id])


async def test_an_unknown_run_is_404_and_a_malformed_id_422(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"{RUNS}/0123456789abcdef")).status_code == 404
    for malformed in ("x" * 65, "a%20b", "caf%C3%A9"):
        assert (await api.get(f"{RUNS}/{malformed}")).status_code == 422, malformed


@pytest.mark.parametrize("store_url", ["memory"], indirect=True)
async def test_a_store_without_pipeline_runs_has_none_to_show(api: httpx.AsyncClient) -> None:
    listed = await api.get(RUNS, params={"offset": 0, "limit": 10})
    assert listed.json() == {"data": [], "count": 0, "offset": 0, "limit": 10}
    assert (await api.get(f"{RUNS}/0123456789abcdef")).status_code == 404


async def test_a_runs_events_follow_it_until_every_request_is_written(
    api_and_pipeline: tuple[httpx.AsyncClient, Pipeline],
) -> None:
    api, pipeline = api_and_pipeline
    query = "connection_count=5&connection_value=40&delay_range=300&delay_unit=ms"
    run_id = (await client_call(pipeline, query))["run_id"]
    events = await rest(api, f"{RUNS}/{run_id}/events")
    assert {event.event for event in events} == {"run"}
    runs = [event.json() for event in events]
    assert runs[0]["run_id"] == run_id
    written = [run["written"] for run in runs]
    assert written == sorted(written)  # each event a later look at the same run
    assert (runs[-1]["acked"], runs[-1]["written"]) == (40, 40)
    assert runs[-1]["finished_at"] is not None


async def test_the_events_of_an_unknown_run_are_404(
    api_and_pipeline: tuple[httpx.AsyncClient, Pipeline],
) -> None:
    api, _ = api_and_pipeline
    assert (await api.get(f"{RUNS}/no-such-run/events")).status_code == 404


async def test_a_runs_counts_stay_once_the_queue_forgets_its_written_receipts(
    api_and_pipeline: tuple[httpx.AsyncClient, Pipeline], tmp_path: Path
) -> None:
    api, pipeline = api_and_pipeline
    run_id = await written_run(
        pipeline, "connection_count=2&connection_value=20&delay_range=0", tmp_path / "out", 20
    )
    writer = pipeline.writer
    assert writer is not None

    async def forgotten() -> bool:
        return writer.forgotten_through == 19  # all but the last line of 2.txt

    await wait_for(forgotten, 10, "the writer to let the queue forget")
    run = await pipeline_run(api, run_id)
    assert (run["received"], run["processed"]) == (20, 20)
