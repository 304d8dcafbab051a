"""REST v1 load runs: create, start, figures, seconds, CSV, live changes, errors, quota."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from harness import CountingTarget, run_api, wait_for
from latlab.jobs.kinds.load_probe import side_probe_summary
from latlab.measure.errors import ERROR_KINDS
from latlab.measure.load.summary import CSV_COLUMNS
from latlab.measure.stats import LatencyHistogram
from latlab.settings import Settings
from load_workers import load_workers
from services import free_port, wait_for_port

RUNS = "/api/v1/load-runs"


def body(port: int, **fields: Any) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:{port}/api/latency", "connections": 4, **fields}


async def create(api: httpx.AsyncClient, fields: dict[str, Any], start: bool = False) -> int:
    response = await api.post(RUNS, json=fields, params={"start": start})
    assert response.status_code == 201, response.text
    run_id: int = response.json()["id"]
    return run_id


async def run(api: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    response = await api.get(f"{RUNS}/{run_id}")
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


async def wait_ended(api: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    async def ended() -> bool:
        return (await run(api, run_id))["state"] in ("completed", "stopped", "failed")

    await wait_for(ended, 30, f"load run {run_id} to end")
    return await run(api, run_id)


async def wait_seconds(api: httpx.AsyncClient, run_id: int, at_least: int) -> None:
    async def stored() -> bool:
        return int((await run(api, run_id))["progress"]["seconds"]) >= at_least

    await wait_for(stored, 30, f"{at_least} seconds of load run {run_id}")


async def seconds(api: httpx.AsyncClient, run_id: int) -> list[dict[str, Any]]:
    page = await api.get(f"{RUNS}/{run_id}/seconds", params={"limit": 1000})
    data: list[dict[str, Any]] = page.json()["data"]
    return data


@pytest.fixture
def targets_process() -> Iterator[int]:
    """``latlab targets`` in a process of its own on a free port: its answers keep time
    whatever this test's event loop (which also runs the API) is doing."""
    port = free_port()
    command = [sys.executable, "-m", "latlab", "targets", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


@asynccontextmanager
async def slow_closed_run(api: httpx.AsyncClient, **fields: Any) -> AsyncIterator[int]:
    """A closed-model run that goes on (and costs little) until the block ends."""
    async with CountingTarget(delay_s=0.05) as target:
        fields = {"connections": 1, "duration": "30s", **fields}
        run_id = await create(api, body(target.port, **fields), start=True)
        try:
            yield run_id
        finally:
            await api.delete(f"{RUNS}/{run_id}")


async def test_a_started_run_completes_with_exactly_n_requests_and_serves_its_seconds(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    run_id = await create(api, body(targets_port, requests=2000, thresholds=["errors<1%"]))
    assert (await run(api, run_id))["state"] == "created"
    assert (await api.post(f"{RUNS}/{run_id}/start")).status_code == 200
    done = await wait_ended(api, run_id)
    rows = await seconds(api, run_id)
    exported = (await api.get(f"{RUNS}/{run_id}/seconds.csv")).text
    assert done["state"] == "completed", done["error"]
    assert done["progress"]["requests"] == done["stats"]["requests"] == 2000
    assert done["stats"]["status"]["2xx"] == 2000
    assert done["stats"]["latency_ms"]["p50"] > 0
    assert done["stats"]["corrected_latency_ms"] is None
    assert (done["thresholds"], done["passed"]) == (
        [{"expression": "errors<1%", "value": 0.0, "ok": True}],
        True,
    )
    assert [row["second"] for row in rows] == list(range(done["progress"]["seconds"]))
    assert sum(row["requests"] for row in rows) == 2000
    table = list(csv.DictReader(io.StringIO(exported)))
    assert exported.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert [int(line["requests"]) for line in table] == [row["requests"] for row in rows]


async def test_the_side_probe_figures_have_the_cli_keys_and_every_error_kind(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    fields = body(targets_port, rate=50, duration="1s", probe="0.1s", connections=2)
    run_id = await create(api, fields, start=True)
    probe = (await wait_ended(api, run_id))["stats"]["probe"]
    assert set(probe) == set(side_probe_summary(LatencyHistogram(), 0.1))  # `latlab load --json`
    assert probe["interval_s"] == 0.1
    assert probe["count"] > 0
    assert probe["errors_by_kind"] == dict.fromkeys(ERROR_KINDS, 0)


async def test_a_rate_change_takes_effect_within_a_second(
    api: httpx.AsyncClient, targets_process: int
) -> None:
    fields = body(targets_process, rate=200, duration="5s", connections=8)
    run_id = await create(api, fields, start=True)
    await wait_seconds(api, run_id, 1)
    changed = await api.patch(f"{RUNS}/{run_id}", json={"rate": 600})
    stored_before_change = changed.json()["progress"]["seconds"]
    done = await wait_ended(api, run_id)
    rates = [row["requests"] for row in await seconds(api, run_id)]
    assert changed.status_code == 200, changed.text
    assert changed.json()["progress"]["rate"] == done["progress"]["rate"] == 600
    # The second the change fell in is mixed; every one before it ran at 200 req/s, every
    # one after it at 600: the change took less than a second to take hold.
    first_changed = next(k for k, rate in enumerate(rates) if rate > 210)
    assert first_changed >= stored_before_change
    assert all(abs(rate - 200) <= 4 for rate in rates[:first_changed]), rates
    assert len(rates[first_changed + 1 :]) >= 2
    assert all(abs(rate - 600) <= 12 for rate in rates[first_changed + 1 :]), rates


async def test_a_change_asked_as_the_run_starts_waits_for_its_pool(
    api: httpx.AsyncClient, targets_process: int
) -> None:
    """A change sent right after ``?start=true`` is taken, from (nearly) the first request.
    (With workers the start answers before the worker's pool is up: tests/jobs/
    test_load_remote.py and tests/cli/test_worker_process.py.)"""
    run_id = await create(api, body(targets_process, rate=100, duration="1s"), start=True)
    changed = await api.patch(f"{RUNS}/{run_id}", json={"rate": 300})
    done = await wait_ended(api, run_id)
    assert changed.status_code == 200, changed.text
    assert changed.json()["progress"]["rate"] == done["progress"]["rate"] == 300
    assert done["stats"]["requests"] > 200  # at 300 req/s from (nearly) the start


async def test_a_rate_for_a_closed_model_run_is_409(api: httpx.AsyncClient) -> None:
    async with slow_closed_run(api) as run_id:
        response = await api.patch(f"{RUNS}/{run_id}", json={"rate": 100})
    assert response.status_code == 409
    assert "closed-model" in response.json()["detail"]


async def test_connections_of_a_running_run_change_and_are_kept(api: httpx.AsyncClient) -> None:
    async with slow_closed_run(api) as run_id:
        response = await api.patch(f"{RUNS}/{run_id}", json={"connections": 3})
        await api.post(f"{RUNS}/{run_id}/pause")
        paused = await run(api, run_id)
    assert response.json()["progress"]["connections"] == 3
    assert paused["progress"]["connections"] == 3


async def test_a_change_to_a_run_that_is_not_running_is_409(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    run_id = await create(api, body(targets_port, rate=100))
    response = await api.patch(f"{RUNS}/{run_id}", json={"rate": 200})
    assert response.status_code == 409
    assert "created" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"rate": 2e6}, "rate"), ({"connections": 1}, "connections"), ({}, None)],
)
async def test_a_change_out_of_bounds_is_422(
    api: httpx.AsyncClient, change: dict[str, Any], field: str | None
) -> None:
    async with slow_closed_run(api, workers=2, connections=2) as run_id:
        response = await api.patch(f"{RUNS}/{run_id}", json=change)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == (["body", field] if field else ["body"])


async def test_connections_may_go_down_to_the_workers_that_actually_run(
    api: httpx.AsyncClient,
) -> None:
    # Four workers asked for, two connections: split() starts two workers, not four.
    async with slow_closed_run(api, workers=4, connections=2) as run_id:
        to_two = await api.patch(f"{RUNS}/{run_id}", json={"connections": 2})
        to_one = await api.patch(f"{RUNS}/{run_id}", json={"connections": 1})
    assert to_two.status_code == 200, to_two.text
    assert to_one.status_code == 422
    assert "the run's 2 worker(s)" in to_one.json()["detail"][0]["msg"]


async def test_after_a_raise_connections_may_go_back_down_to_the_workers_running(
    api: httpx.AsyncClient,
) -> None:
    # Two workers run; connections 2 -> 3 -> 2 leaves each one at least one.
    async with slow_closed_run(api, workers=4, connections=2) as run_id:
        up = await api.patch(f"{RUNS}/{run_id}", json={"connections": 3})
        down = await api.patch(f"{RUNS}/{run_id}", json={"connections": 2})
    assert (up.status_code, down.status_code) == (200, 200), down.text


@pytest.mark.parametrize(
    "change", [{"rate": True}, {"rate": "200"}, {"connections": "3"}, {"connections": True}]
)
async def test_a_change_of_the_wrong_type_is_422_naming_its_field(
    api: httpx.AsyncClient, targets_port: int, change: dict[str, Any]
) -> None:
    run_id = await create(api, body(targets_port, rate=100))
    response = await api.patch(f"{RUNS}/{run_id}", json=change)
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", *change]]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"requests": 10, "duration": "2s"}, ["body", "duration"]),
        ({"url": "http://169.254.169.254/latest"}, ["body", "url"]),
        ({"connections": 20_000}, ["body", "connections"]),
        ({"duration": "48h"}, ["body", "duration"]),
        ({"rate": 0}, ["body", "rate"]),
        ({"thresholds": ["p99 < fast"]}, ["body", "thresholds"]),
        ({"threshold": ["p99<1ms"]}, ["body"]),
    ],
)
async def test_a_spec_it_cannot_run_is_422_naming_the_field(
    api: httpx.AsyncClient, fields: dict[str, Any], loc: list[str]
) -> None:
    response = await api.post(RUNS, json={"url": "http://127.0.0.1:9/", **fields})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert (await api.get(RUNS)).json()["count"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("connections", 20_000), ("duration", "48h"), ("rate", 2e6), ("workers", 100)],
)
async def test_a_value_past_a_limit_is_the_input_of_its_422(
    api: httpx.AsyncClient, field: str, value: object
) -> None:
    response = await api.post(RUNS, json={"url": "http://127.0.0.1:9/", field: value})
    error = response.json()["detail"][0]
    assert (response.status_code, error["loc"], error["input"]) == (422, ["body", field], value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duration", True),
        ("duration", "1e3"),
        ("probe", True),
        ("warmup", True),
        ("connections", "5"),
        ("connections", True),
        ("workers", True),
        ("requests", "10"),
        ("rate", True),
        ("rate", "5"),
        ("insecure", "yes"),
    ],
)
async def test_a_value_of_the_wrong_type_is_422_not_coerced(
    api: httpx.AsyncClient, field: str, value: object
) -> None:
    response = await api.post(RUNS, json={"url": "http://127.0.0.1:9/", field: value})
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/{id}"),
        ("GET", "/{id}/seconds"),
        ("GET", "/{id}/seconds.csv"),
        ("POST", "/{id}/start"),
        ("PATCH", "/{id}"),
        ("DELETE", "/{id}"),
    ],
)
async def test_an_unknown_id_is_404_and_a_non_integer_id_422(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    change = {"rate": 10} if method == "PATCH" else None
    unknown = await api.request(method, RUNS + path.format(id=12345), json=change)
    malformed = await api.request(method, RUNS + path.format(id="abc"), json=change)
    assert (unknown.status_code, malformed.status_code) == (404, 422)
    assert unknown.json()["detail"] == "load run 12345 not found"


async def test_starting_past_the_running_quota_is_429(tmp_path: Any) -> None:
    settings = Settings(
        storage_url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}",
        max_running_load_runs=1,
        freeze_gc=False,
    )
    async with run_api(settings) as api, slow_closed_run(api):
        second = await api.post(RUNS, json={"url": "http://127.0.0.1:9/"}, params={"start": True})
    assert second.status_code == 429
    assert second.json()["setting"] == "LATLAB_MAX_RUNNING_LOAD_RUNS"


async def test_the_list_is_paged_and_filters_by_state(api: httpx.AsyncClient) -> None:
    ids = [await create(api, body(9)) for _ in range(3)]
    await api.post(f"{RUNS}/{ids[1]}/stop")
    page = (await api.get(RUNS, params={"offset": 1, "limit": 1})).json()
    stopped = (await api.get(RUNS, params={"state": "stopped"})).json()
    assert ([r["id"] for r in page["data"]], page["count"]) == ([ids[1]], 3)
    assert [r["id"] for r in stopped["data"]] == [ids[1]]


async def test_deleting_a_running_run_ends_its_worker_processes(api: httpx.AsyncClient) -> None:
    async with slow_closed_run(api, workers=2, connections=2) as run_id:
        running = load_workers(os.getpid())
        deleted = await api.delete(f"{RUNS}/{run_id}")
        left = load_workers(os.getpid())
        gone = await api.get(f"{RUNS}/{run_id}")
    assert (len(running), left) == (2, [])
    assert (deleted.status_code, gone.status_code) == (204, 404)
