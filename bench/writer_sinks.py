"""The batch writer's throughput with every sink of the event seam attached, and without.

N jobs (default 200) each write R results one at a time (default 250), awaiting each commit
as a probe runner does, through one ``BatchWriter`` on a SQLite file. Run twice in this
process: with no sinks, then with the Prometheus counters, the InfluxDB probe sink (into a
real influxd on a free port, started here) and 10 live-feed subscriptions to every result,
drained as fast as they fill. Prints results/s of both and their ratio (goal: close to 1 —
the sinks run after the commit and never wait).

    python bench/writer_sinks.py [--jobs 200] [--results 250]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvloop
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from influx import influx_server
from latlab.exporters.base import ProbeTags
from latlab.exporters.influx import InfluxClient, InfluxConfig, InfluxExporter
from latlab.exporters.influx_probes import InfluxProbeSink
from latlab.exporters.prometheus import ProbeMetrics
from latlab.jobs.events import Events
from latlab.jobs.kinds.probe import KIND
from latlab.jobs.live import LiveHub, Subscription
from latlab.storage import ProbeResult, Store, open_store
from latlab.storage.writer import BatchWriter

START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LIVE_CLIENTS = 10


async def one_job(writer: BatchWriter, job_id: int, results: int) -> None:
    for seq in range(results):
        at = START + timedelta(milliseconds=seq)
        await writer.write([ProbeResult(job_id, seq, 200, 1.0 + seq % 7, at, at)])


async def drain(subscription: Subscription, expected: int) -> int:
    """Read as fast as events come, until ``expected`` results arrived (or an overflow)."""
    received = 0
    async for event in subscription:
        received += isinstance(event, ProbeResult)
        if received == expected:
            break
    return received


async def timed_run(store: Store, events: Events, jobs: int, results: int) -> float:
    """Results committed per second."""
    ids = [(await store.create_job(KIND, {})).id for _ in range(jobs)]
    for job_id in ids:
        events.describe(job_id, ProbeTags("127.0.0.1", 8008, "/api/latency"))
    async with BatchWriter(store, committed=events.committed) as writer:
        began = time.perf_counter()
        await asyncio.gather(*(one_job(writer, job_id, results) for job_id in ids))
        elapsed_s = time.perf_counter() - began
    return jobs * results / elapsed_s


async def with_sinks(store: Store, influx_url: str, jobs: int, results: int) -> tuple[float, int]:
    exporter = InfluxExporter(
        InfluxClient(InfluxConfig(influx_url, "bench")), max_backlog_points=10_000_000
    )
    hub = LiveHub(buffer=jobs * results + 1)
    events = Events([ProbeMetrics(1000), InfluxProbeSink(exporter), hub])
    exporter.start()
    async with AsyncExitStack() as stack:
        subscriptions = [stack.enter_context(hub.subscribe(results=True)) for _ in range(10)]
        readers = [asyncio.create_task(drain(s, jobs * results)) for s in subscriptions]
        rate = await timed_run(store, events, jobs, results)
        received = await asyncio.gather(*readers)
    assert received == [jobs * results] * LIVE_CLIENTS, received
    await exporter.close(flush_timeout_s=60)
    return rate, exporter.stats.sent_points


async def run(jobs: int, results: int, folder: Path) -> None:
    plain_store = await open_store(f"sqlite+aiosqlite:///{folder / 'plain.db'}")
    sinks_store = await open_store(f"sqlite+aiosqlite:///{folder / 'sinks.db'}")
    try:
        plain = await timed_run(plain_store, Events(), jobs, results)
        with influx_server(folder / "influx") as influx:
            sinks, sent = await with_sinks(sinks_store, influx.url, jobs, results)
    finally:
        await plain_store.close()
        await sinks_store.close()
    report(jobs, results, plain, sinks, sent)


def report(jobs: int, results: int, plain: float, sinks: float, sent: int) -> None:
    table = Table(title=f"BatchWriter, {jobs} jobs x {results} results, SQLite")
    for column in ("sinks", "results/s", "vs no sinks"):
        table.add_column(column, justify="right")
    table.add_row("none", f"{plain:,.0f}", "1.00")
    everything = f"Prometheus + InfluxDB + {LIVE_CLIENTS} live clients"
    table.add_row(everything, f"{sinks:,.0f}", f"{sinks / plain:.2f}")
    console = Console()
    console.print(table)
    console.print(f"points written to InfluxDB: {sent:,} of {jobs * results:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--results", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uvloop.run(run(args.jobs, args.results, Path(tmp)))


if __name__ == "__main__":
    main()
