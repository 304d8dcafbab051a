"""Dumping 1M results through the seed route: does the API stay responsive?

Fills one experiment with N results (default 1,000,000) in a SQLite file, serves the API with
uvicorn in this process, and dumps ``/result_experiment`` twice: streamed (the route today)
and as before streaming (the whole model list built, then one JSON document; mounted here at
``/before`` for comparison). During each dump it records the longest event-loop stall, the
slowest ``/healthz`` answer, the peak RSS growth (VmHWM) and the time. Goal: stall and /healthz
< 50 ms, RSS flat.

    python bench/result_dump.py [--results 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
import uvloop
from fastapi import FastAPI, Response
from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table

from latlab.api.schemas import Experiment, seed_experiment
from latlab.app import create_app
from latlab.jobs.kinds.probe import KIND
from latlab.settings import Settings
from latlab.storage import JobState, ProbeResult, Store, open_store
from latlab.storage.records import ProgressUpdate

BATCH = 20_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Dump:
    name: str
    seconds: float
    max_stall_ms: float
    max_stall_cpu_ms: float
    max_healthz_ms: float
    rss_growth_mb: float
    sha256: str


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)


async def fill(url: str, count: int) -> int:
    store = await open_store(url)
    try:
        spec = {"host": "127.0.0.1", "port": 8008, "interval_s": 1.0, "count": count}
        (job,) = await store.create_jobs(KIND, [spec], state=JobState.COMPLETED)
        for first in range(0, count, BATCH):
            batch = [
                ProbeResult(job.id, seq, 200, 0.3 + seq % 97 / 100, T0, T0, 0.1, 0.2)
                for seq in range(first, min(first + BATCH, count))
            ]
            await store.checkpoint(batch, [ProgressUpdate(KIND, job.id, {"done": first})])
        return job.id
    finally:
        await store.close()


def add_before_route(app: FastAPI, store: Store) -> None:
    """The route as it was: every result in one list of models, then one document."""

    async def before(experiment_id: int) -> Response:
        job = await store.get_job(KIND, experiment_id)
        document = seed_experiment(job, await store.probe_results.list(job.id))
        return Response(TypeAdapter(Experiment).dump_json(document), media_type="application/json")

    app.add_api_route("/before", before)


async def _watch_loop(stalls_s: list[float], stalls_cpu_s: list[float]) -> None:
    """Gaps between 1 ms timers: in wall time, and in the loop thread's CPU time (what the
    loop itself spent; a busy machine adds to the first only)."""
    loop = asyncio.get_running_loop()
    last, last_cpu = loop.time(), time.thread_time()
    while True:
        await asyncio.sleep(0.001)
        now, now_cpu = loop.time(), time.thread_time()
        stalls_s.append(now - last - 0.001)
        stalls_cpu_s.append(now_cpu - last_cpu)
        last, last_cpu = now, now_cpu


async def _poll_healthz(client: httpx.AsyncClient, done: asyncio.Event) -> list[float]:
    times_s = []
    while not done.is_set():
        began = time.perf_counter()
        (await client.get("/healthz")).raise_for_status()
        times_s.append(time.perf_counter() - began)
        await asyncio.sleep(0.01)
    return times_s


async def dump(client: httpx.AsyncClient, name: str, path: str) -> Dump:
    stalls_s: list[float] = []
    stalls_cpu_s: list[float] = []
    done = asyncio.Event()
    rss_before_kib = _kib("VmRSS")
    _reset_peak_rss()
    watcher = asyncio.create_task(_watch_loop(stalls_s, stalls_cpu_s))
    health = asyncio.create_task(_poll_healthz(client, done))
    began = time.perf_counter()
    digest = hashlib.sha256()
    async with client.stream("GET", path) as response:
        async for chunk in response.aiter_raw():
            digest.update(chunk)
    seconds = time.perf_counter() - began
    done.set()
    healthz_s = await health
    watcher.cancel()
    growth_mb = (_kib("VmHWM") - rss_before_kib) / 1024
    stall_ms, stall_cpu_ms = max(stalls_s) * 1000, max(stalls_cpu_s) * 1000
    healthz_ms = max(healthz_s) * 1000
    return Dump(name, seconds, stall_ms, stall_cpu_ms, healthz_ms, growth_mb, digest.hexdigest())


async def run(count: int, db: Path) -> list[Dump]:
    url = f"sqlite+aiosqlite:///{db}"
    job_id = await fill(url, count)
    app = create_app(Settings(storage_url=url, targets_enabled=False))
    store = await open_store(url)
    add_before_route(app, store)
    server = uvicorn.Server(uvicorn.Config(app, port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        await client.get("/result_experiment", params={"experiment_id": job_id + 1})  # warm up
        streamed = await dump(client, "streamed", f"/result_experiment?experiment_id={job_id}")
        before = await dump(client, "before (one document)", f"/before?experiment_id={job_id}")
    server.should_exit = True
    await task
    await store.close()
    return [streamed, before]


def report(count: int, dumps: list[Dump]) -> None:
    table = Table(title=f"/result_experiment with {count:,} results, SQLite, over HTTP")
    columns = ("route", "seconds", "max stall ms", "(CPU ms)", "max /healthz ms", "RSS +MB")
    for column in columns:
        table.add_column(column, justify="right")
    for d in dumps:
        table.add_row(
            d.name,
            f"{d.seconds:.1f}",
            f"{d.max_stall_ms:.1f}",
            f"{d.max_stall_cpu_ms:.1f}",
            f"{d.max_healthz_ms:.1f}",
            f"{d.rss_growth_mb:.0f}",
        )
    console = Console()
    console.print(table)
    streamed, before = dumps
    console.print(
        f"same bytes: {streamed.sha256 == before.sha256}; before / streamed: "
        f"stall {before.max_stall_cpu_ms / streamed.max_stall_cpu_ms:.0f}x (CPU), "
        f"RSS {before.rss_growth_mb / max(streamed.rss_growth_mb, 1):.0f}x, "
        f"time {before.seconds / streamed.seconds:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report(args.results, uvloop.run(run(args.results, Path(tmp) / "dump.db")))


if __name__ == "__main__":
    main()
