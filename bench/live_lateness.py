"""Probe lateness of 1,000 experiments with every sink attached: InfluxDB and 10 live clients.

Runs the schedule-lateness measurement (bench/schedule_lateness.py: N experiments at a 1 s
interval, SQLite, targets in a child process) twice, with the API served by uvicorn in this
process: first with no sinks, then with probe points going to a real influxd (started here on
free loopback ports) and 10 clients (curl processes) reading ``/api/v1/events?include=results``
all along. Prints lateness of both, their ratio, and checks that every client got every result
and InfluxDB every point. Goal: p99 still < 10 ms with everything attached.

    python bench/live_lateness.py [--experiments 1000] [--count 10] [--one-by-one]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvloop
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _targets import targets_process
from harness import run_api
from influx import InfluxServer, influx_server
from latlab.settings import Settings
from latlab.storage import open_store
from schedule_lateness import Outcome, lateness

LIVE_CLIENTS = 10


@asynccontextmanager
async def live_clients(port: int, folder: Path, clients: int) -> AsyncIterator[list[Path]]:
    """``clients`` curl processes reading the feed of every result into files, until the
    block ends."""
    url = f"http://127.0.0.1:{port}/api/v1/events?include=results"
    outputs = [folder / f"feed-{n}-{port}.txt" for n in range(clients)]
    readers = [
        await asyncio.create_subprocess_exec("curl", "-sN", "-o", str(out), url) for out in outputs
    ]
    try:
        deadline = time.monotonic() + 10
        while not all(out.exists() and out.stat().st_size for out in outputs):
            if time.monotonic() > deadline:
                raise RuntimeError("live clients did not connect")
            await asyncio.sleep(0.05)  # each file gets ": subscribed" once its feed is live
        yield outputs
    finally:
        for reader in readers:
            reader.terminate()
            await reader.wait()


async def create_started(
    api: httpx.AsyncClient, targets: int, experiments: int, count: int, one_by_one: bool
) -> list[int]:
    """Through the API: 10,000 per call, started in the same call (phases bunched, as
    schedule_lateness.py in bulk); or ``one_by_one``, as users clicking start do."""
    spec = {"host": "127.0.0.1", "port": targets, "interval_s": 1.0, "count": count}
    ids: list[int] = []
    size = 1 if one_by_one else 10_000
    for first in range(0, experiments, size):
        batch = [spec] * min(size, experiments - first)
        response = await api.post("/api/v1/experiments", params={"start": "true"}, json=batch)
        response.raise_for_status()
        ids += [created["id"] for created in response.json()["data"]]
    return ids


async def wait_completed(api: httpx.AsyncClient, experiments: int) -> None:
    with Progress(transient=True) as progress:
        task = progress.add_task("experiments completed", total=experiments)
        while True:
            page = await api.get("/api/v1/experiments", params={"state": "completed", "limit": 1})
            completed = int(page.json()["count"])
            progress.update(task, completed=completed)
            if completed == experiments:
                return
            await asyncio.sleep(0.5)


async def one_pass(
    experiments: int,
    count: int,
    targets: int,
    folder: Path,
    influx: InfluxServer | None,
    one_by_one: bool,
) -> Outcome:
    db = folder / ("sinks.db" if influx else "plain.db")
    settings = Settings(
        storage_url=f"sqlite+aiosqlite:///{db}",
        influx_url=None if influx is None else influx.url,
        log_level="warning",
    )
    async with (
        run_api(settings) as api,
        live_clients(api.base_url.port or 0, folder, LIVE_CLIENTS if influx else 0) as feeds,
    ):
        ids = await create_started(api, targets, experiments, count, one_by_one)
        await wait_completed(api, experiments)
        await asyncio.sleep(1)  # the clients' last events are on their way
    for feed in feeds:
        got = feed.read_text().count("event: result")
        assert got == experiments * count, f"{feed.name}: {got} results"
    if influx is not None:
        await _wait_points(influx, experiments * count)
    store = await open_store(settings.storage_url)
    try:
        return await lateness(store, ids)
    finally:
        await store.close()


async def _wait_points(influx: InfluxServer, expected: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        rows = await asyncio.to_thread(influx.query, 'SELECT count("seq") FROM "probe"')
        points = int(rows[0]["values"][0][1]) if rows else 0
        if points == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{points} points in InfluxDB, not {expected}")
        await asyncio.sleep(0.5)


async def run(experiments: int, count: int, targets: int, folder: Path, one_by_one: bool) -> None:
    plain = await one_pass(experiments, count, targets, folder, None, one_by_one)
    with influx_server(folder / "influx") as influx:
        sinks = await one_pass(experiments, count, targets, folder, influx, one_by_one)
    report(experiments, count, plain, sinks)


def report(experiments: int, count: int, plain: Outcome, sinks: Outcome) -> None:
    table = Table(title=f"{experiments} experiments x {count} probes, 1 s interval: lateness")
    for column in ("sinks", "p50 ms", "p90 ms", "p99 ms", "max ms", "skipped"):
        table.add_column(column, justify="right")
    for name, outcome in (("none", plain), (f"InfluxDB + {LIVE_CLIENTS} live clients", sinks)):
        stats = outcome.histogram.stats()
        figures = (stats.p50_ms, stats.p90_ms, stats.p99_ms, stats.max_ms)
        table.add_row(name, *(f"{value or 0:.3f}" for value in figures), str(outcome.skipped))
    console = Console()
    console.print(table)
    p99_plain = plain.histogram.stats().p99_ms or 0
    p99_sinks = sinks.histogram.stats().p99_ms or 0
    console.print(f"p99 with sinks / without: {p99_sinks / max(p99_plain, 1e-9):.2f}")
    verdict = "meets" if p99_sinks < 10 else "misses"
    console.print(f"every client got every result; p99 {p99_sinks:.3f} ms {verdict} the 10 ms goal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--one-by-one", action="store_true", help="start them one at a time")
    args = parser.parse_args()
    with targets_process() as targets, tempfile.TemporaryDirectory() as tmp:
        uvloop.run(run(args.experiments, args.count, targets, Path(tmp), args.one_by_one))


if __name__ == "__main__":
    main()
