"""A load run's seconds reach every sink: its live feed, /metrics and InfluxDB, each once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness import run_api, wait_for
from influx import influx_server
from latlab.settings import Settings
from sse import rest, subscribed

RUNS = "/api/v1/load-runs"


async def requests_on_metrics(api: httpx.AsyncClient, run_id: int) -> float:
    page = (await api.get("/metrics")).text
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == "latlab_load_requests_total" and sample.labels["run"] == str(run_id):
                return sample.value
    return 0.0


async def test_every_second_reaches_the_feed_metrics_and_influxdb(
    tmp_path: Path, targets_port: int
) -> None:
    with influx_server(tmp_path / "influx") as influx:
        settings = Settings(
            storage_url=f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}",
            freeze_gc=False,
            influx_url=influx.url,
        )
        async with run_api(settings) as api:
            url = f"http://127.0.0.1:{targets_port}/api/latency?x=1"
            spec = {"url": url, "connections": 2, "rate": 400, "duration": "2.5s"}
            run_id = (await api.post(RUNS, json=spec)).json()["id"]
            async with subscribed(api, f"{RUNS}/{run_id}/events") as live:
                assert (await api.post(f"{RUNS}/{run_id}/start")).status_code == 200
                frames = await live.until()
            replayed = await rest(api, f"{RUNS}/{run_id}/events", params={"after": 0})
            on_metrics = await requests_on_metrics(api, run_id)
            stored = (await api.get(f"{RUNS}/{run_id}/seconds")).json()["data"]
            stats = (await api.get(f"{RUNS}/{run_id}")).json()["stats"]

            def all_points() -> bool:
                return len(influx.points("load")) == len(stored)

            await wait_for(lambda: asyncio.to_thread(all_points), what="the seconds in InfluxDB")
            points = influx.points("load")
    seconds = [frame.json() for frame in frames if frame.event == "second"]
    assert [frame.event for frame in frames][-1] == "state"
    assert frames[-1].json()["state"] == "completed"
    assert [s["second"] for s in seconds] == [row["second"] for row in stored] == [0, 1, 2]
    assert [frame.id for frame in frames if frame.event == "second"] == ["0", "1", "2"]
    assert [s["requests"] for s in seconds] == [row["requests"] for row in stored]
    assert [f.json()["second"] for f in replayed if f.event == "second"] == [1, 2]  # after 0
    assert on_metrics == sum(row["requests"] for row in stored) == stats["requests"]
    assert 990 <= stats["requests"] <= 1000  # 400/s for 2.5 s; one answered past the end is not
    assert stats["missed_sends"] == 0  # late ones, if the loop was busy, were still sent
    assert stats["corrected_percentiles"][-1]["total_count"] == stats["requests"]
    assert [int(point["requests"]) for point in points] == [row["requests"] for row in stored]
    assert {(p["run"], p["path"], p["method"]) for p in points} == {
        (str(run_id), "/api/latency", "GET")
    }
