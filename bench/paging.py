"""Does an experiment with 100,000 results still list and page fast?

Fills one experiment with N results (default 100,000) in a SQLite file, serves the API with
uvicorn on a free port, and times over HTTP: the first and the last page of results (the ratio
should be about 1: pages are index seeks), stats, the CSV export and the seed route that returns
every result at once.

    python bench/paging.py [--results 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
import uvloop
from rich.console import Console
from rich.table import Table

from latlab.app import create_app
from latlab.jobs.kinds.probe import KIND
from latlab.settings import Settings
from latlab.storage import ProbeResult, open_store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def fill(url: str, count: int) -> int:
    store = await open_store(url)
    try:
        spec = {"host": "127.0.0.1", "port": 8008, "interval_s": 1.0, "count": count}
        job = await store.create_job(KIND, spec)
        for start in range(0, count, 10_000):
            batch = [
                ProbeResult(
                    job.id,
                    seq,
                    200,
                    0.3 + seq % 97 / 100,
                    T0 + timedelta(seconds=seq),
                    T0 + timedelta(seconds=seq),
                    0.1,
                    0.2,
                )
                for seq in range(start, min(start + 10_000, count))
            ]
            await store.checkpoint(batch, [])
        return job.id
    finally:
        await store.close()


async def timed(client: httpx.AsyncClient, path: str, repeat: int) -> tuple[float, int]:
    times_ms, size = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        response = await client.get(path)
        times_ms.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return statistics.median(times_ms), size


async def run(count: int, db: Path) -> None:
    url = f"sqlite+aiosqlite:///{db}"
    job_id = await fill(url, count)
    config = uvicorn.Config(create_app(Settings(storage_url=url)), port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"/api/v1/experiments/{job_id}"
    cases = [
        ("first page (100)", f"{base}/results?offset=0&limit=100", 20),
        ("last page (100)", f"{base}/results?offset={count - 100}&limit=100", 20),
        ("stats", f"{base}/stats", 3),
        ("results.csv", f"{base}/results.csv", 1),
        ("seed /result_experiment (all)", f"/result_experiment?experiment_id={job_id}", 1),
    ]
    rows = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
        for name, path, repeat in cases:
            rows.append((name, *await timed(client, path, repeat)))
    server.should_exit = True
    await task
    report(count, rows)


def report(count: int, rows: list[tuple[str, float, int]]) -> None:
    table = Table(title=f"one experiment with {count:,} results, SQLite, over HTTP")
    for column in ("request", "median ms", "bytes"):
        table.add_column(column, justify="right")
    for name, ms, size in rows:
        table.add_row(name, f"{ms:.1f}", f"{size:,}")
    console = Console()
    console.print(table)
    console.print(f"last page / first page: {rows[1][1] / rows[0][1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uvloop.run(run(args.results, Path(tmp) / "paging.db"))


if __name__ == "__main__":
    main()
