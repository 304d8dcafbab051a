"""Bots per process: CPU, memory and tick lateness of one fleet.

Starts N bots (10,000 and 100,000 by default) ticking once a second in this process, lets them
run, and reports over a measuring window: CPU % of one core, resident memory, and how late each
bucket fired against its schedule. Goals at 100,000: lateness p99 < 50 ms, RSS < 1 GB.

    python bench/bots_fleet.py [--bots 10000 100000] [--window-s 10] [--log-ticks]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import tempfile
import time
from pathlib import Path

import uvloop
from rich.console import Console
from rich.table import Table

from latlab.coordination import LocalCoordinator
from latlab.jobs.clock import SystemClock
from latlab.jobs.events import Events
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.kinds.bot import KIND, BotRunner
from latlab.jobs.manager import JobManager
from latlab.jobs.runner import RunContext
from latlab.measure.client import ProbeClient
from latlab.measure.stats import LatencyHistogram
from latlab.storage import open_store
from latlab.storage.writer import BatchWriter

Row = tuple[str, ...]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def start_bots(jobs: JobManager, count: int) -> float:
    """Bots in bulk (one transaction per 10,000), as a restart adopts them."""
    began = time.perf_counter()
    for first in range(0, count, 10_000):
        chunk = [{"start_number": n} for n in range(first, min(first + 10_000, count))]
        await jobs.create_many(KIND, chunk, start=True)
    return time.perf_counter() - began


async def measure(count: int, url: str, window_s: float, log_ticks: bool) -> Row:
    store = await open_store(url)
    coordinator = LocalCoordinator()
    runner = BotRunner(1.0, log_ticks=log_ticks)
    async with BatchWriter(store) as writer:
        ctx = RunContext(store, writer, SystemClock(), ProbeClient(), coordinator, Events())
        jobs = JobManager(ctx, InProcessExecutor(), [runner])
        await jobs.start()
        started_s = await start_bots(jobs, count)
        await asyncio.sleep(2)  # let every bucket fire once before measuring
        runner.scheduler.lateness_ms = LatencyHistogram()
        cpu_before, wall_before = cpu_s(), time.perf_counter()
        await asyncio.sleep(window_s)
        cpu_pct = (cpu_s() - cpu_before) / (time.perf_counter() - wall_before) * 100
        stats = runner.scheduler.lateness_ms.stats()
        memory_mb = rss_mb()
        await jobs.shutdown()
    await coordinator.close()
    await store.close()
    store_name = url.split(":", 1)[0]
    logging_label = "on" if log_ticks else "off"
    return (
        f"{count:,}",
        store_name,
        logging_label,
        f"{started_s:.1f}",
        f"{cpu_pct:.1f}",
        f"{memory_mb:.0f}",
        f"{stats.p50_ms:.2f}",
        f"{stats.p99_ms:.2f}",
        f"{stats.max_ms:.2f}",
    )


def report(rows: list[Row]) -> None:
    table = Table(title="bots ticking once a second in one process")
    columns = ("bots", "store", "tick log", "start s", "CPU %", "RSS MB")
    for column in (*columns, "late p50 ms", "late p99 ms", "late max ms"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


async def run(args: argparse.Namespace, folder: Path) -> None:
    rows = []
    for count in args.bots:
        url = f"sqlite+aiosqlite:///{folder / f'bots-{count}.db'}" if args.sqlite else "memory://"
        rows.append(await measure(count, url, args.window_s, args.log_ticks))
    report(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--log-ticks", action="store_true", help="one log line per tick")
    parser.add_argument("--sqlite", action="store_true", help="SQLite file instead of memory://")
    args = parser.parse_args()
    if args.log_ticks:  # formatted and written, as in production, but to a file
        logging.basicConfig(filename=Path(tempfile.gettempdir()) / "bots-bench.log", level="INFO")
    with tempfile.TemporaryDirectory() as tmp:
        uvloop.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
