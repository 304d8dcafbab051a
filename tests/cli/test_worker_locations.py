"""An experiment at two locations: ``latlab serve`` and ``latlab worker --location`` processes
on one SQLite store and the local Redis, probing a target in this process."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet import WorkerProcess, api_and_workers
from harness import CountingTarget, wait_for
from latlab.storage import open_store

EXPERIMENTS = "/api/v1/experiments"
pytestmark = pytest.mark.timeout(120)


async def finished(api: httpx.AsyncClient, experiment_id: int) -> dict[str, Any]:
    async def ended() -> bool:
        state = (await api.get(f"{EXPERIMENTS}/{experiment_id}")).json()["state"]
        return state in ("completed", "failed", "stopped")

    await wait_for(ended, 60, what=f"experiment {experiment_id} to end")
    found: dict[str, Any] = (await api.get(f"{EXPERIMENTS}/{experiment_id}")).json()
    return found


async def all_results(api: httpx.AsyncClient, experiment_id: int) -> list[dict[str, Any]]:
    page = await api.get(f"{EXPERIMENTS}/{experiment_id}/results", params={"limit": 1000})
    rows: list[dict[str, Any]] = page.json()["data"]
    return rows


def claimed_where(workers_: list[WorkerProcess], site_id: int) -> list[int]:
    return [n for n, w in enumerate(workers_) if f"probe_site job {site_id} claimed" in w.output()]


async def test_each_location_probes_from_its_worker_and_every_result_says_where(
    tmp_path: Path,
) -> None:
    db = tmp_path / "latlab.db"
    async with CountingTarget() as target, api_and_workers(db, "eu-1", "us-1") as (api, fleet):
        spec = {"host": "127.0.0.1", "port": target.port, "path": "/", "interval_s": 0.02}
        body = {**spec, "count": 20, "locations": ["eu-1", "us-1"]}
        created = await api.post(EXPERIMENTS, json=body, params={"start": True})
        assert created.status_code == 201, created.text
        experiment = await finished(api, created.json()["id"])
        rows = await all_results(api, experiment["id"])
        stats = (await api.get(f"{EXPERIMENTS}/{experiment['id']}/stats")).json()
        us_only = await api.get(
            f"{EXPERIMENTS}/{experiment['id']}/results", params={"location": "us-1"}
        )
        # Relayed from the workers to the API process, with their location as a label; the
        # relay is not the store: its last batch may come after the experiment completed.
        for where in ("eu-1", "us-1"):
            labels = f'experiment="{experiment["id"]}",location="{where}",status_class="2xx"'
            await counted(api, f"latlab_probe_results_total{{{labels}}} 20.0")
    assert experiment["state"] == "completed", experiment
    assert (experiment["done"], experiment["by_location"]) == (40, {"eu-1": 20, "us-1": 20})
    assert target.requests == 40
    keys = [(row["location"], row["seq"]) for row in rows]
    assert keys == [(where, seq) for where in ("eu-1", "us-1") for seq in range(20)]
    assert {row["location"] for row in us_only.json()["data"]} == {"us-1"}
    assert stats["count"] == 40
    assert {where: s["count"] for where, s in stats["by_location"].items()} == {
        "eu-1": 20,
        "us-1": 20,
    }
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    try:
        parent = await store.get_job("probe", experiment["id"])
    finally:
        await store.close()
    assert [claimed_where(fleet, site) for site in parent.progress["sites"]] == [[0], [1]]


async def counted(api: httpx.AsyncClient, line: str) -> None:
    async def in_metrics() -> bool:
        return line in (await api.get("/metrics")).text

    await wait_for(in_metrics, what=f"/metrics to show {line}")


async def test_a_series_whose_worker_dies_goes_on_at_its_location_nothing_lost_or_twice(
    tmp_path: Path,
) -> None:
    db = tmp_path / "latlab.db"
    locations = ("eu-1", "eu-1", "us-1")
    async with CountingTarget() as target, api_and_workers(db, *locations) as (api, fleet):
        spec = {"host": "127.0.0.1", "port": target.port, "path": "/", "interval_s": 0.02}
        body = {**spec, "count": 150, "locations": ["eu-1", "us-1"]}
        created = await api.post(EXPERIMENTS, json=body, params={"start": True})
        experiment_id = created.json()["id"]

        async def halfway() -> bool:
            found = (await api.get(f"{EXPERIMENTS}/{experiment_id}")).json()
            return int((found.get("by_location") or {}).get("eu-1", 0)) >= 50

        await wait_for(halfway, 30, what="the eu-1 series halfway")
        store = await open_store(f"sqlite+aiosqlite:///{db}")
        try:
            eu_site = (await store.get_job("probe", experiment_id)).progress["sites"][0]
        finally:
            await store.close()
        (running,) = claimed_where(fleet, eu_site)
        fleet[running].process.send_signal(signal.SIGKILL)
        experiment = await finished(api, experiment_id)
        rows = await all_results(api, experiment_id)
    assert experiment["state"] == "completed", experiment
    keys = [(row["location"], row["seq"]) for row in rows]
    assert keys == [(where, seq) for where in ("eu-1", "us-1") for seq in range(150)]
    survivor = 1 - running
    assert claimed_where(fleet, eu_site) == sorted([running, survivor])


async def test_a_stop_keeps_what_the_workers_store_as_they_halt(tmp_path: Path) -> None:
    """Found in review: the stop summed the series' progress before their workers had heard
    of it, so a result they stored meanwhile was in /results but not in done, and a feed
    reconnecting after it got a 204 and never saw it."""
    db = tmp_path / "latlab.db"
    async with CountingTarget() as target, api_and_workers(db, "eu-1", "us-1") as (api, _):
        spec = {"host": "127.0.0.1", "port": target.port, "path": "/", "interval_s": 0.002}
        body = {**spec, "count": 100_000, "locations": ["eu-1", "us-1"]}
        created = await api.post(EXPERIMENTS, json=body, params={"start": True})
        experiment_id = created.json()["id"]

        async def probing() -> bool:
            found = (await api.get(f"{EXPERIMENTS}/{experiment_id}")).json()
            return all(n >= 20 for n in (found.get("by_location") or {"": 0}).values())

        await wait_for(probing, 30, what="both series probing")
        stopped = (await api.post(f"{EXPERIMENTS}/{experiment_id}/stop")).json()
        stored = {
            where: (
                await api.get(
                    f"{EXPERIMENTS}/{experiment_id}/results", params={"location": where, "limit": 1}
                )
            ).json()["count"]
            for where in ("eu-1", "us-1")
        }
    assert stopped["state"] == "stopped"
    assert stopped["by_location"] == stored
    assert stopped["done"] == sum(stored.values())
