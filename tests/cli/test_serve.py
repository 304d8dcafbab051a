"""``latlab serve`` as users run it: a real process, killed and restarted on one database."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from harness import CountingTarget, latlab_serve, wait_done, wait_state
from latlab.measure.stats import LatencyHistogram
from services import free_port, wait_for_port


def read_logs(folder: Path) -> str:
    return "".join(path.read_text() for path in folder.glob("serve-*.log"))


def recounted(results: list[dict[str, Any]]) -> dict[str, Any]:
    histogram = LatencyHistogram()
    for result in results:
        histogram.record(result["latency_ms"], result["error"])
    return dataclasses.asdict(histogram.stats())


async def test_sigkill_mid_run_then_restart_finishes_with_exactly_count_and_exact_stats(
    tmp_path: Path,
) -> None:
    db = tmp_path / "latlab.db"
    flush_often = {"LATLAB_STATS_FLUSH_RESULTS": "7"}  # histograms stored a few times mid-run
    async with CountingTarget() as target:
        spec = {"host": "127.0.0.1", "port": target.port, "interval_s": 0.05, "count": 30}
        with latlab_serve(db, "--no-targets", env=flush_often) as (process, url):
            async with httpx.AsyncClient(base_url=url) as api:
                experiment_id = (await api.post("/api/v1/experiments", json=spec)).json()["id"]
                await api.post(f"/api/v1/experiments/{experiment_id}/start")
                await wait_done(api, experiment_id, 8)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        with latlab_serve(db, "--no-targets", env=flush_often) as (_, url):
            async with httpx.AsyncClient(base_url=url) as api:
                done = await wait_state(api, experiment_id, "completed")
                page = await api.get(
                    f"/api/v1/experiments/{experiment_id}/results", params={"limit": 100}
                )
                stats = (await api.get(f"/api/v1/experiments/{experiment_id}/stats")).json()
    assert done["done"] == 30
    assert [r["seq"] for r in page.json()["data"]] == list(range(30))
    assert stats == {
        **recounted(page.json()["data"]),
        "from": None,
        "to": None,
        "by_location": None,
    }
    assert 30 <= target.requests <= 31  # a probe in flight at the kill is redone once


async def test_serve_runs_the_targets_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    targets_port = free_port()
    several = {"LATLAB_TARGETS_WORKERS": "2"}  # for `latlab targets`: said, not ignored
    with latlab_serve(tmp_path / "latlab.db", "--targets-port", str(targets_port), env=several) as (
        process,
        url,
    ):
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{url}/healthz")
            pong = await client.get(f"http://127.0.0.1:{targets_port}/api/latency")
        process.terminate()
        assert process.wait(timeout=15) == 0  # graceful: the API and the targets both closed
    assert health.json()["status"] == "ok"
    assert pong.json() == {"message": "pong"}
    assert "Application shutdown complete" in read_logs(tmp_path)
    assert "LATLAB_TARGETS_WORKERS=2 is for `latlab targets`" in read_logs(tmp_path)


def test_targets_command_serves_api_latency(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "latlab", "targets", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        assert httpx.get(f"http://127.0.0.1:{port}/api/latency").json() == {"message": "pong"}
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0


def test_version_and_help() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "latlab", "--help"], capture_output=True, text=True, check=True
    )
    assert "serve" in run.stdout
    assert "targets" in run.stdout
