"""The original service's README flow and shapes, at the root and under /api."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness import wait_state


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_readme_flow_create_start_result(
    api: httpx.AsyncClient, targets_port: int, prefix: str
) -> None:
    created = await api.post(
        f"{prefix}/create_experiment",
        params={"host": "127.0.0.1", "port": targets_port, "interval": 0.05, "count": 4},
    )
    assert created.status_code == 200
    experiment_id = created.json()["experiment_id"]
    assert isinstance(experiment_id, int)

    started = await api.post(
        f"{prefix}/manage_experiment", params={"state": "start", "experiment_id": experiment_id}
    )
    assert started.json() == {"experiment_id": experiment_id, "state": "running"}
    await wait_state(api, experiment_id, "completed")

    result = (await api.get(f"{prefix}/result_experiment?experiment_id={experiment_id}")).json()
    assert result["settings"] == {
        "host": "127.0.0.1",
        "port": targets_port,
        "interval": 0.05,
        "count": 4,
    }
    assert result["state"] == "completed"
    assert [r["status_code"] for r in result["results"]] == [200] * 4
    assert all(r["latency_ms"] > 0 and r["timestamp"].endswith("Z") for r in result["results"])
    assert result["created_at"] <= result["updated_at"]


async def test_list_experiments_returns_every_experiment_with_results(
    api: httpx.AsyncClient,
) -> None:
    params: dict[str, Any] = {"host": "127.0.0.1", "port": 9, "interval": 1, "count": 1}
    ids = [(await api.post("/create_experiment", params=params)).json()["experiment_id"]]
    ids.append((await api.post("/create_experiment", params=params)).json()["experiment_id"])
    listed = (await api.get("/list_experiments")).json()
    assert [e["id"] for e in listed] == ids
    assert all(e["state"] == "created" and e["results"] == [] for e in listed)


async def test_test_latency_probes_once(api: httpx.AsyncClient, targets_port: int) -> None:
    response = await api.get("/test-latency", params={"host": "127.0.0.1", "port": targets_port})
    body = response.json()
    assert (response.status_code, body["status_code"]) == (200, 200)
    assert body["latency_ms"] > 0
    assert body["error"] is None


async def test_test_latency_records_a_refused_connection(
    api: httpx.AsyncClient, unused_port: int
) -> None:
    body = (
        await api.get("/test-latency", params={"host": "127.0.0.1", "port": unused_port})
    ).json()
    assert (body["status_code"], body["latency_ms"]) == (0, -1)
    assert "refused" in body["error"]


async def test_manage_pause_and_stop_report_the_new_state(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    params: dict[str, Any] = {"host": "127.0.0.1", "port": targets_port, "interval": 5, "count": 3}
    experiment_id = (await api.post("/create_experiment", params=params)).json()["experiment_id"]
    manage = {"experiment_id": experiment_id}
    assert (await api.post("/manage_experiment", params={**manage, "state": "start"})).json()[
        "state"
    ] == "running"
    paused = await api.post("/manage_experiment", params={**manage, "state": "pause"})
    assert paused.json() == {"experiment_id": experiment_id, "state": "paused"}
    stopped = await api.post("/manage_experiment", params={**manage, "state": "stop"})
    assert stopped.json() == {"experiment_id": experiment_id, "state": "stopped"}
    again = await api.post("/manage_experiment", params={**manage, "state": "start"})
    assert again.status_code == 400
    assert again.json()["detail"] == f"cannot start experiment {experiment_id}: it is stopped"
