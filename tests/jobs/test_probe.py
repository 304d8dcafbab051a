"""Experiments as jobs: schedule, totals across pause/resume, one loop per experiment."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

import httpx
import pytest

from harness import CountingTarget, wait_done, wait_state


async def start_experiment(api: httpx.AsyncClient, port: int, **fields: Any) -> int:
    spec = {"host": "127.0.0.1", "port": port, **fields}
    experiment_id: int = (await api.post("/api/v1/experiments", json=spec)).json()["id"]
    await api.post(f"/api/v1/experiments/{experiment_id}/start")
    return experiment_id


async def results(api: httpx.AsyncClient, experiment_id: int) -> list[dict[str, Any]]:
    page = await api.get(f"/api/v1/experiments/{experiment_id}/results", params={"limit": 1000})
    data: list[dict[str, Any]] = page.json()["data"]
    return data


def seconds(result: dict[str, Any], key: str) -> float:
    return datetime.fromisoformat(result[key]).timestamp()


@pytest.mark.usefixtures("frozen_heap")
async def test_schedule_does_not_drift(api: httpx.AsyncClient, targets_port: int) -> None:
    experiment_id = await start_experiment(api, targets_port, interval_s=0.1, count=20)
    await wait_state(api, experiment_id, "completed")
    probes = await results(api, experiment_id)
    assert len(probes) == 20
    span_s = seconds(probes[-1], "timestamp") - seconds(probes[0], "timestamp")
    assert abs(span_s - 1.9) <= 0.05
    first_due = seconds(probes[0], "scheduled_at")
    for k, probe in enumerate(probes):
        due = seconds(probe, "scheduled_at")
        assert abs(due - (first_due + k * 0.1)) < 1e-3  # the grid itself is exact
        lateness_s = seconds(probe, "timestamp") - due
        assert 0 <= lateness_s <= 0.02, (k, lateness_s)


async def test_slow_probes_skip_missed_slots_instead_of_bursting(api: httpx.AsyncClient) -> None:
    async with CountingTarget(delay_s=0.25) as target:
        experiment_id = await start_experiment(api, target.port, interval_s=0.1, count=4)
        done = await wait_state(api, experiment_id, "completed")
    probes = await results(api, experiment_id)
    assert len(probes) == 4 == target.requests
    assert all(p["latency_ms"] >= 250 for p in probes)
    first_due = seconds(probes[0], "scheduled_at")
    grid = [(seconds(p, "scheduled_at") - first_due) / 0.1 for p in probes]
    slots = [round(position) for position in grid]
    assert all(abs(position - slot) < 0.01 for position, slot in zip(grid, slots, strict=True))
    assert all(b - a >= 3 for a, b in itertools.pairwise(slots))  # 0.25 s > 2 slots
    assert done["skipped_slots"] == slots[-1] - 3


async def test_pause_resume_keeps_count_a_total(api: httpx.AsyncClient) -> None:
    async with CountingTarget() as target:
        experiment_id = await start_experiment(api, target.port, interval_s=0.03, count=12)
        await wait_done(api, experiment_id, 3)
        paused = (await api.post(f"/api/v1/experiments/{experiment_id}/pause")).json()
        assert paused["state"] == "paused"
        frozen = len(await results(api, experiment_id))
        assert 3 <= frozen < 12
        assert paused["done"] == frozen
        await api.post(f"/api/v1/experiments/{experiment_id}/resume")
        await wait_state(api, experiment_id, "completed")
    probes = await results(api, experiment_id)
    assert [p["seq"] for p in probes] == list(range(12))
    assert target.requests - 12 <= 1  # a probe in flight when paused is redone, nothing else


async def test_double_start_runs_one_loop(api: httpx.AsyncClient) -> None:
    async with CountingTarget() as target:
        spec = {"host": "127.0.0.1", "port": target.port, "interval_s": 0.02, "count": 10}
        experiment_id = (await api.post("/api/v1/experiments", json=spec)).json()["id"]
        start = f"/api/v1/experiments/{experiment_id}/start"
        answers = await asyncio.gather(*(api.post(start) for _ in range(3)))
        assert {a.json()["state"] for a in answers} == {"running"}
        await api.post(f"/manage_experiment?state=start&experiment_id={experiment_id}")
        await wait_state(api, experiment_id, "completed")
        assert target.requests == 10
    assert len(await results(api, experiment_id)) == 10


async def test_stop_is_final_and_keeps_results(api: httpx.AsyncClient) -> None:
    async with CountingTarget() as target:
        experiment_id = await start_experiment(api, target.port, interval_s=0.02, count=500)
        await wait_done(api, experiment_id, 2)
        stopped = (await api.post(f"/api/v1/experiments/{experiment_id}/stop")).json()
    assert stopped["state"] == "stopped"
    assert len(await results(api, experiment_id)) == stopped["done"] >= 2
    assert (await api.post(f"/api/v1/experiments/{experiment_id}/start")).status_code == 409


async def test_keep_alive_probes_skip_the_connect_phase(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    experiment_id = await start_experiment(
        api, targets_port, interval_s=0.01, count=3, keep_alive=True
    )
    await wait_state(api, experiment_id, "completed")
    connects = [p["connect_ms"] for p in await results(api, experiment_id)]
    assert connects[0] is not None
    assert connects[1:] == [None, None]
