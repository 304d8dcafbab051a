"""``/metrics`` on the control API and probe points in InfluxDB, through the running app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from harness import CountingTarget, run_api, wait_for, wait_state
from influx import influx_server
from latlab.settings import Settings


async def scrape(api: httpx.AsyncClient) -> list[Sample]:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return sum(matching)


async def run_experiment(api: httpx.AsyncClient, port: int, count: int, **fields: Any) -> int:
    spec = {"host": "127.0.0.1", "port": port, "interval_s": 0.005, "count": count, **fields}
    created = (await api.post("/api/v1/experiments?start=true", json=spec)).json()
    await wait_state(api, created["id"], "completed")
    return int(created["id"])


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        storage_url=f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}",
        freeze_gc=False,
        metrics_max_experiments=2,
    )
    async with run_api(settings) as client:
        yield client


async def test_histogram_counts_equal_the_stored_results(
    api: httpx.AsyncClient, targets_port: int, unused_port: int
) -> None:
    ok = await run_experiment(api, targets_port, 12)
    failed = await run_experiment(api, unused_port, 3)
    samples = await scrape(api)
    count = value(samples, "latlab_probe_duration_seconds_count", experiment=str(ok))
    assert count == 12 == value(samples, "latlab_probe_results_total", experiment=str(ok))
    inf = value(samples, "latlab_probe_duration_seconds_bucket", experiment=str(ok), le="+Inf")
    assert inf == 12
    stats = (await api.get(f"/api/v1/experiments/{ok}/stats")).json()
    seconds = value(samples, "latlab_probe_duration_seconds_sum", experiment=str(ok))
    # Stats count each latency to the µs and round the mean to the µs: up to 1 µs a probe
    # apart, 0.26 % of a 0.38 ms mean (a relative 0.1 % failed one run in three here).
    assert seconds == pytest.approx(stats["mean_ms"] * 12 / 1000, abs=12 * 1e-6)
    errors = value(samples, "latlab_probe_results_total", experiment=str(failed))
    assert errors == 3 == value(samples, "latlab_probe_results_total", status_class="error")
    assert value(samples, "latlab_probe_duration_seconds_count", experiment=str(failed)) == 0


async def test_jobs_and_writer_gauges(api: httpx.AsyncClient, targets_port: int) -> None:
    await run_experiment(api, targets_port, 2)
    await api.post("/api/v1/experiments", json={"host": "127.0.0.1", "port": 9})
    samples = await scrape(api)
    assert value(samples, "latlab_jobs", kind="probe", state="completed") == 1
    assert value(samples, "latlab_jobs", kind="probe", state="created") == 1
    assert value(samples, "latlab_jobs", kind="bot", state="running") == 0
    assert value(samples, "latlab_bots_active") == 0
    assert value(samples, "latlab_writer_queue_depth") == 0
    assert 0 <= value(samples, "latlab_writer_last_commit_age_seconds") < 3600


async def test_past_the_limit_experiments_are_summed_as_other_and_deletion_frees_a_slot(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    first, second, _third = [await run_experiment(api, targets_port, 2) for _ in range(3)]
    samples = await scrape(api)
    labels = {s.labels["experiment"] for s in samples if s.name == "latlab_probe_results_total"}
    assert labels == {str(first), str(second), "other"}
    assert (await api.delete(f"/api/v1/experiments/{first}")).status_code == 204
    fourth = await run_experiment(api, targets_port, 2)
    samples = await scrape(api)
    labels = {s.labels["experiment"] for s in samples if s.name == "latlab_probe_results_total"}
    assert labels == {str(second), str(fourth), "other"}
    assert value(samples, "latlab_probe_results_total", experiment="other") == 2  # third's


async def test_probe_points_reach_influxdb_even_when_it_was_down_meanwhile(
    tmp_path: Path,
) -> None:
    with influx_server(tmp_path / "influx") as influx:
        settings = Settings(
            storage_url=f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}",
            freeze_gc=False,
            influx_url=influx.url,
        )
        async with CountingTarget() as target, run_api(settings) as api:
            spec = {"host": "127.0.0.1", "port": target.port, "interval_s": 0.02, "count": 50}
            created = (await api.post("/api/v1/experiments?start=true", json=spec)).json()

            async def some_done() -> bool:
                got = await api.get(f"/api/v1/experiments/{created['id']}")
                return int(got.json()["done"]) >= 10

            await wait_for(some_done, what="ten probes")
            await asyncio.to_thread(influx.stop)
            # All 50 stored while InfluxDB is down: the probes never waited for it.
            await wait_state(api, created["id"], "completed")
            held = value(await scrape(api), "latlab_influx_backlog_points")
            await asyncio.to_thread(influx.start)

            def all_points() -> bool:
                return len(influx.points("probe")) == 50

            await wait_for(lambda: asyncio.to_thread(all_points), what="50 points in InfluxDB")
        points = influx.points("probe")
    assert held > 0  # kept for later, then written
    assert sorted(int(p["seq"]) for p in points) == list(range(50))
    assert {p["experiment"] for p in points} == {str(created["id"])}
    assert {(p["host"], p["port"], p["path"]) for p in points} == {
        ("127.0.0.1", str(target.port), "/api/latency")
    }
    assert all(p["status_class"] == "2xx" and p["latency_ms"] > 0 for p in points)
