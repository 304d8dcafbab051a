"""``/stats`` of an experiment with 1,000,000 results: stored histograms vs a full recount.

Fills a SQLite store with one experiment's results (synthetic latencies, one probe per
millisecond, so 17 minutes of per-minute histograms), stored the way the probe runner stores
them: results with their checkpoint, histograms flushed with every 10,000th result, and the
last results left in the tail. Then times ``GET /stats`` over HTTP (uvicorn on a free
loopback port), with and without a 5-minute window, against the reference: recounting every
stored latency into one histogram, as ``/stats`` did before. Goal: < 50 ms at 1,000,000 results.

    python bench/stats_query.py [--results 1000000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvloop
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import run_api
from latlab.jobs.kinds.probe import KIND
from latlab.jobs.kinds.probe_stats import FLUSH_RESULTS, StatsKeeper
from latlab.measure.stats import summarize
from latlab.settings import Settings
from latlab.storage import ProbeResult, Store, open_store
from latlab.storage.records import ProgressUpdate

CHUNK = 10_000
TAIL = FLUSH_RESULTS - 1  # the longest tail a running experiment has (its worst case)
START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def synthetic(job_id: int, first: int, size: int, rng: random.Random) -> list[ProbeResult]:
    results = []
    for seq in range(first, first + size):
        at = START + timedelta(milliseconds=seq)
        failed = rng.random() < 0.001
        latency_ms = -1.0 if failed else rng.lognormvariate(0.0, 0.6)
        error = "connection refused" if failed else None
        results.append(
            ProbeResult(job_id, seq, 0 if failed else 200, latency_ms, at, at, error=error)
        )
    return results


async def fill(store: Store, total: int) -> int:
    """Chunks flushed with their histograms, then ``TAIL`` results that are not yet."""
    job = await store.create_job(KIND, {"host": "127.0.0.1", "port": 1, "count": total})
    rng = random.Random(7)
    keeper = StatsKeeper(store, job.id, flush_results=CHUNK)
    flushed_part = total - TAIL
    chunks = [(first, min(CHUNK, flushed_part - first)) for first in range(0, flushed_part, CHUNK)]
    with Progress(transient=True) as progress:
        task = progress.add_task("storing results", total=total)
        for first, size in [*chunks, (flushed_part, TAIL)]:
            results = synthetic(job.id, first, size, rng)
            for result in results:
                keeper.add(result)
            flush = first < flushed_part
            histograms = await keeper.updates() if flush else []
            update = ProgressUpdate(KIND, job.id, {"done": results[-1].seq + 1})
            await store.checkpoint(results, [update], histograms)
            if flush:
                keeper.flushed(histograms)
            progress.update(task, advance=len(results))
    return job.id


async def timed_ms(call: Callable[[], Awaitable[object]], runs: int) -> float:
    """Median wall time of ``runs`` calls, after one warm-up call."""
    await call()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def run(total: int, db: Path) -> None:
    url = f"sqlite+aiosqlite:///{db}"
    store = await open_store(url)
    try:
        job_id = await fill(store, total)

        async def recount() -> object:
            return summarize(await store.probe_results.latencies_ms(job_id))

        recount_ms = await timed_ms(recount, 3)
    finally:
        await store.close()
    async with run_api(Settings(storage_url=url, targets_enabled=False)) as api:
        path = f"/api/v1/experiments/{job_id}/stats"
        window = {"from": "2026-12-03T09:04:00Z", "to": "2026-12-03T09:09:00Z"}
        whole_ms = await timed_ms(lambda: api.get(path), 20)
        window_ms = await timed_ms(lambda: api.get(path, params=window), 20)
        stats = (await api.get(path)).json()
    report(total, stats, whole_ms, window_ms, recount_ms)


def report(
    total: int, stats: dict[str, object], whole_ms: float, window_ms: float, recount_ms: float
) -> None:
    table = Table(title=f"/stats of one experiment with {total:,} results (SQLite, median)")
    for column in ("query", "ms", "vs full recount"):
        table.add_column(column, justify="right")
    table.add_row("GET /stats", f"{whole_ms:.1f}", f"{recount_ms / whole_ms:.0f}x faster")
    table.add_row(
        "GET /stats?from=&to= (5 min)", f"{window_ms:.1f}", f"{recount_ms / window_ms:.0f}x faster"
    )
    table.add_row("full recount (reference)", f"{recount_ms:.1f}", "1x")
    console = Console()
    console.print(table)
    console.print(f"count {stats['count']:,}, p99 {stats['p99_ms']} ms, errors {stats['errors']}")
    verdict = "meets" if whole_ms < 50 else "misses"
    console.print(f"/stats {whole_ms:.1f} ms {verdict} the 50 ms goal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uvloop.run(run(args.results, Path(tmp) / "bench.db"))


if __name__ == "__main__":
    main()
