"""REST v1: create, list, get, actions, delete, results, stats, CSV — on every store."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from conftest import STORE_KINDS
from harness import CountingTarget, wait_done, wait_state
from latlab.measure.errors import ERROR_KINDS


def body(port: int, **fields: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "interval_s": 0.02, "count": 3, **fields}


async def create(api: httpx.AsyncClient, port: int, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/experiments", json=body(port, **fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
async def test_full_lifecycle_on_every_store(api: httpx.AsyncClient, targets_port: int) -> None:
    created = await create(api, targets_port, count=5)
    assert (created["state"], created["done"], created["settings"]["path"]) == (
        "created",
        0,
        "/api/latency",
    )
    await api.post(f"/api/v1/experiments/{created['id']}/start")
    done = await wait_state(api, created["id"], "completed")
    assert done["done"] == 5
    results = (await api.get(f"/api/v1/experiments/{created['id']}/results")).json()
    assert [r["seq"] for r in results["data"]] == [0, 1, 2, 3, 4]
    assert results["count"] == 5
    stats = (await api.get(f"/api/v1/experiments/{created['id']}/stats")).json()
    assert (stats["count"], stats["errors"]) == (5, 0)
    assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"] * 1.001
    assert (await api.delete(f"/api/v1/experiments/{created['id']}")).status_code == 204
    assert (await api.get(f"/api/v1/experiments/{created['id']}")).status_code == 404


async def test_list_pages_and_filters_by_state(api: httpx.AsyncClient) -> None:
    ids = [(await create(api, 9, interval_s=60))["id"] for _ in range(3)]
    await api.post(f"/api/v1/experiments/{ids[1]}/stop")
    page = (await api.get("/api/v1/experiments", params={"offset": 1, "limit": 1})).json()
    assert ([e["id"] for e in page["data"]], page["count"]) == ([ids[1]], 3)
    stopped = (await api.get("/api/v1/experiments", params={"state": "stopped"})).json()
    assert [e["id"] for e in stopped["data"]] == [ids[1]]


async def test_results_page_from_an_offset(api: httpx.AsyncClient, targets_port: int) -> None:
    created = await create(api, targets_port, count=6, interval_s=0.01)
    await api.post(f"/api/v1/experiments/{created['id']}/start")
    await wait_state(api, created["id"], "completed")
    page = await api.get(
        f"/api/v1/experiments/{created['id']}/results", params={"offset": 4, "limit": 5}
    )
    assert [r["seq"] for r in page.json()["data"]] == [4, 5]


async def test_results_csv_has_a_header_and_one_row_per_probe(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    created = await create(api, targets_port, count=3)
    await api.post(f"/api/v1/experiments/{created['id']}/start")
    await wait_state(api, created["id"], "completed")
    response = await api.get(f"/api/v1/experiments/{created['id']}/results.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["seq"] for row in rows] == ["0", "1", "2"]
    assert all(row["status_code"] == "200" and "T" in row["timestamp"] for row in rows)


async def test_stats_of_an_experiment_without_results_are_empty(api: httpx.AsyncClient) -> None:
    created = await create(api, 9)
    stats = (await api.get(f"/api/v1/experiments/{created['id']}/stats")).json()
    no_errors = dict.fromkeys(ERROR_KINDS, 0)
    figures = ["min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms"]
    assert stats == {
        "count": 0,
        "errors": 0,
        "errors_by_kind": no_errors,
        **dict.fromkeys([*figures, "stddev_ms", "from", "to", "by_location"]),
    }


async def test_failed_probes_count_as_errors(api: httpx.AsyncClient, unused_port: int) -> None:
    created = await create(api, unused_port, count=2)
    await api.post(f"/api/v1/experiments/{created['id']}/start")
    await wait_state(api, created["id"], "completed")
    stats = (await api.get(f"/api/v1/experiments/{created['id']}/stats")).json()
    assert (stats["count"], stats["errors"], stats["p50_ms"]) == (2, 2, None)
    assert stats["errors_by_kind"]["refused"] == 2
    results = (await api.get(f"/api/v1/experiments/{created['id']}/results")).json()["data"]
    assert all(r["status_code"] == 0 and r["latency_ms"] == -1 and r["error"] for r in results)


async def test_invalid_transition_is_409_with_a_message(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    created = await create(api, targets_port, count=1)
    response = await api.post(f"/api/v1/experiments/{created['id']}/resume")
    assert response.status_code == 409
    assert response.json() == {"detail": f"cannot resume experiment {created['id']}: it is created"}


async def test_delete_stops_a_running_experiment(api: httpx.AsyncClient) -> None:
    async with CountingTarget() as target:
        created = await create(api, target.port, interval_s=0.02, count=1000)
        await api.post(f"/api/v1/experiments/{created['id']}/start")
        await wait_done(api, created["id"], 2)
        assert (await api.delete(f"/api/v1/experiments/{created['id']}")).status_code == 204
        seen = target.requests
        listed = (await api.get("/api/v1/experiments")).json()
        assert listed["count"] == 0
        assert target.requests <= seen + 1  # at most the probe that was in flight


async def test_timeout_default_comes_from_settings(api: httpx.AsyncClient) -> None:
    created = await create(api, 9)
    assert created["settings"]["timeout_s"] == 5  # the api fixture's probe_timeout_s


async def test_healthz_reports_the_store(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "store": "ok"})


async def test_a_stats_window_is_rounded_out_to_minutes_and_echoed(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    created = await create(api, targets_port, count=4, interval_s=0.01)
    await api.post(f"/api/v1/experiments/{created['id']}/start")
    await wait_state(api, created["id"], "completed")
    results = (await api.get(f"/api/v1/experiments/{created['id']}/results")).json()["data"]
    first = datetime.fromisoformat(results[0]["timestamp"])
    window = {"from": first.isoformat(), "to": (first + timedelta(seconds=1)).isoformat()}
    stats = (await api.get(f"/api/v1/experiments/{created['id']}/stats", params=window)).json()
    start = first.replace(second=0, microsecond=0)
    assert datetime.fromisoformat(stats["from"]) == start
    assert datetime.fromisoformat(stats["to"]) - start in (
        timedelta(minutes=1),
        timedelta(minutes=2),
    )
    assert stats["count"] == sum(
        start <= datetime.fromisoformat(r["timestamp"]) < datetime.fromisoformat(stats["to"])
        for r in results
    )
    earlier = {"to": (start - timedelta(hours=1)).isoformat()}
    none = (await api.get(f"/api/v1/experiments/{created['id']}/stats", params=earlier)).json()
    assert none["count"] == 0


@pytest.mark.parametrize(
    "window",
    [
        {"from": "2026-12-03T10:05:00Z", "to": "2026-12-03T10:05:00Z"},
        {"from": "2026-12-03T10:06:00Z", "to": "2026-12-03T10:05:00Z"},
        {"from": "yesterday"},
        {"to": "2026-13-03T10:05:00Z"},
        {"from": "1969-12-31T23:59:00Z"},
        {"from": "0001-01-01T00:00:00+01:00"},
        {"to": "9999-12-31T23:59:30Z"},
        {"to": "9999-12-31T23:59:59-23:00"},
    ],
)
async def test_a_bad_stats_window_is_422(api: httpx.AsyncClient, window: dict[str, str]) -> None:
    created = await create(api, 9)
    response = await api.get(f"/api/v1/experiments/{created['id']}/stats", params=window)
    assert response.status_code == 422, response.text
