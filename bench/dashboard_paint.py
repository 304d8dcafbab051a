"""How soon does the dashboard paint, and draw its data, with a lab's worth of it?

Fills a SQLite file with 1,000 experiments of 30 results each and a load run with an hour of
seconds (3,600, each with its histogram as a run stores it), serves it with ``latlab serve``
on a free port, and opens three pages in headless Chromium (Debian's), each five times in a
fresh browser context (no cache):

- the new-experiment form, a template with no data (the reference: what a page costs),
- the overview (``/ui/``): its 50 newest experiments with heartbeat strips, p50, p99,
- a load-run page (``/ui/load-runs/1``): 3,600 seconds drawn in two charts and a table.

It prints, per page, the median first contentful paint (the browser's own figure) and the
time until the data is drawn (the table's rows, or every second in the chart), and their
ratio to the reference. The goal (issue 12): under 1 s each on this machine.

    python bench/dashboard_paint.py [--experiments 1000] [--seconds 3600] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, async_playwright, expect
from rich.console import Console
from rich.table import Table

from latlab.jobs.kinds.load_stats import second_payload
from latlab.measure.load.seconds import SecondStats
from latlab.measure.stats import LatencyHistogram
from latlab.storage import ProbeResult, open_store
from latlab.storage.records import TOTAL_BUCKET, HistogramUpdate, ProgressUpdate

CHROMIUM = "/usr/bin/chromium"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RATE = 1000  # the load run's requests a second


async def fill_experiments(store_url: str, experiments: int, rng: random.Random) -> None:
    store = await open_store(store_url)
    try:
        spec = {"host": "127.0.0.1", "port": 8008, "interval_s": 1.0, "count": 30}
        for _ in range(experiments):
            job = await store.create_job("probe", spec)
            results = [
                ProbeResult(
                    job.id, seq, 200, rng.lognormvariate(0, 0.5),
                    T0 + timedelta(seconds=seq), T0 + timedelta(seconds=seq), 0.1, 0.2,
                )
                for seq in range(30)
            ]  # fmt: skip
            done = ProgressUpdate("probe", job.id, {"done": 30})
            await store.checkpoint(results, [done])
    finally:
        await store.close()


def a_second(second: int, rng: random.Random) -> SecondStats:
    stats = SecondStats(second, corrected=LatencyHistogram())
    counts = Counter(int(rng.lognormvariate(6, 0.6)) for _ in range(RATE))  # microseconds
    stats.service.record_counts(counts)
    assert stats.corrected is not None
    stats.corrected.record_counts(counts)
    stats.status["2xx"] = RATE
    return stats


async def fill_load_run(store_url: str, seconds: int, rng: random.Random) -> None:
    store = await open_store(store_url)
    try:
        spec = {"url": "http://127.0.0.1:8008/api/latency", "rate": RATE, "connections": 64}
        job = await store.create_job("load", {**spec, "duration": float(seconds)})
        total = SecondStats(TOTAL_BUCKET, corrected=LatencyHistogram())
        for first in range(0, seconds, 300):
            batch = [a_second(n, rng) for n in range(first, min(first + 300, seconds))]
            updates = [HistogramUpdate("load", job.id, s.second, second_payload(s)) for s in batch]
            for stats in batch:
                total.merge(stats)
            updates.append(HistogramUpdate("load", job.id, TOTAL_BUCKET, total.to_payload()))
            progress = {"seconds": first + len(batch), "requests": (first + len(batch)) * RATE}
            await store.checkpoint([], [ProgressUpdate("load", job.id, progress)], updates)
    finally:
        await store.close()


def serve(store_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LATLAB_STORAGE_URL": store_url, "LATLAB_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "latlab", "serve", "--no-targets", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError("latlab serve exited")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError("latlab serve did not listen within 30 s")


async def timed_page(
    browser: Browser, url: str, drawn: str, attribute: str | None
) -> tuple[float, float]:
    """First contentful paint and the time until ``drawn`` is there (ms), in a fresh context."""
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    began = time.perf_counter()
    await page.goto(url)
    target = page.locator(drawn)
    if attribute is None:
        await target.first.wait_for(timeout=60_000)
    else:
        name, value = attribute.split("=", 1)
        await expect(target).to_have_attribute(name, value, timeout=60_000)
    ready_ms = (time.perf_counter() - began) * 1000
    paint = await page.evaluate(
        "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
    )
    await context.close()
    return float(paint), ready_ms


async def measure(base: str, runs: int, seconds: int) -> list[tuple[str, float, float]]:
    pages = [
        ("new experiment form, no data (reference)", "/ui/experiments/new", "form#new-job", None),
        ("overview, 50 of the experiments", "/ui/", "#experiments tbody tr:nth-child(50)", None),
        ("load run, 3,600 s", "/ui/load-runs/1", "#rate-chart", f"data-points={seconds}"),
    ]
    rows = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for name, path, drawn, attribute in pages:
                await timed_page(browser, base + path, drawn, attribute)  # warm the server
                timings = [
                    await timed_page(browser, base + path, drawn, attribute) for _ in range(runs)
                ]
                paint = statistics.median(t[0] for t in timings)
                ready = statistics.median(t[1] for t in timings)
                rows.append((name, paint, ready))
        finally:
            await browser.close()
    return rows


def report(rows: list[tuple[str, float, float]], experiments: int) -> None:
    table = Table(
        title=f"dashboard in headless Chromium: {experiments:,} experiments, median of runs"
    )
    for column in ("page", "first paint ms", "data drawn ms", "paint / ref", "drawn / ref"):
        table.add_column(column, justify="right")
    _, ref_paint, ref_ready = rows[0]
    for name, paint, ready in rows:
        table.add_row(
            name,
            f"{paint:.0f}",
            f"{ready:.0f}",
            f"{paint / ref_paint:.2f}x",
            f"{ready / ref_ready:.2f}x",
        )
    console = Console()
    console.print(table)
    worst = max(max(paint, ready) for _, paint, ready in rows[1:])
    verdict = "met" if worst < 1000 else "NOT met"
    console.print(f"goal < 1 s to paint and draw each page: {verdict} (slowest {worst:.0f} ms)")


async def run(args: argparse.Namespace, root: Path) -> None:
    store_url = f"sqlite+aiosqlite:///{root / 'dashboard.db'}"
    rng = random.Random(12)
    print(
        f"filling {args.experiments:,} experiments and {args.seconds:,} seconds of a load run",
        flush=True,
    )
    await fill_experiments(store_url, args.experiments, rng)
    await fill_load_run(store_url, args.seconds, rng)
    port = _free_port()
    server = serve(store_url, port, root / "serve.log")
    try:
        await until_listening(port, server)
        rows = await measure(f"http://127.0.0.1:{port}", args.runs, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(rows, args.experiments)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
