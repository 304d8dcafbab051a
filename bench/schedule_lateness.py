"""How late do probes start when many experiments run at once?

Runs N experiments (default 1,000) at a 1 s interval in one LatLab process on the default store
(a SQLite file), against the built-in targets in another process, and reports the lateness of
every probe after the first of each experiment: recorded start minus scheduled time, with the
probes per second and how many experiments ran at once at the peak. Goals: 1,000 → p99 < 10
ms; the stretch, 10,000 all running at once with p99 < 10 ms (reported, not gated).

    python bench/schedule_lateness.py [--experiments 1000] [--count 10]
    python bench/schedule_lateness.py --experiments 10000 --count 20
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import uvloop
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from _targets import targets_process
from latlab.app import create_app
from latlab.jobs.kinds.probe import KIND
from latlab.jobs.manager import JobManager
from latlab.measure.stats import LatencyHistogram
from latlab.settings import Settings
from latlab.storage import JobState, Store


async def start_all(
    jobs: JobManager, port: int, experiments: int, count: int, one_by_one: bool
) -> list[int]:
    """In bulk, 10,000 per transaction, as POST ?start=true does (phases bunched within the
    creation time); or ``one_by_one``, as users clicking start do (phases spread out)."""
    spec = {"host": "127.0.0.1", "port": port, "interval_s": 1.0, "count": count}
    if one_by_one:
        return [(await jobs.create(KIND, spec, start=True)).id for _ in range(experiments)]
    ids: list[int] = []
    for first in range(0, experiments, 10_000):
        batch = [spec] * min(10_000, experiments - first)
        ids += [job.id for job in await jobs.create_many(KIND, batch, start=True)]
    return ids


async def wait_all(store: Store, experiments: int) -> None:
    # Only a count per poll: loading every job here would stall the very loop being measured.
    with Progress(transient=True) as progress:
        task = progress.add_task("experiments completed", total=experiments)
        while True:
            completed = (await store.list_jobs(KIND, states={JobState.COMPLETED}, limit=1)).total
            progress.update(task, completed=completed)
            if completed == experiments:
                return
            await asyncio.sleep(0.5)


@dataclass
class Outcome:
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    skipped: int = 0
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)

    def probes_per_s(self, probes: int) -> float:
        """Probes recorded over the whole run, from the first probe to the last."""
        first = min(a for a, _ in self.windows)
        last = max(b for _, b in self.windows)
        return probes / max((last - first).total_seconds(), 1e-9)

    def peak_concurrency(self) -> int:
        """Most experiments between their first and last probe at one moment."""
        edges = sorted([(a, 1) for a, _ in self.windows] + [(b, -1) for _, b in self.windows])
        running = peak = 0
        for _, step in edges:
            running += step
            peak = max(peak, running)
        return peak


async def lateness(store: Store, ids: list[int]) -> Outcome:
    outcome = Outcome()
    for job_id in ids:
        results = await store.probe_results.list(job_id)
        for result in results[1:]:  # the first probe is due when it starts, by definition
            late_ms = (result.timestamp - result.scheduled_at).total_seconds() * 1000
            outcome.histogram.record(max(late_ms, 0.0))
        outcome.windows.append((results[0].timestamp, results[-1].timestamp))
        outcome.skipped += (await store.get_job(KIND, job_id)).progress.get("skipped_slots", 0)
    return outcome


async def run(experiments: int, count: int, port: int, db: Path, one_by_one: bool) -> None:
    app = create_app(Settings(storage_url=f"sqlite+aiosqlite:///{db}"))
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        store, jobs = state["latlab"].store, state["latlab"].jobs
        began = time.perf_counter()
        ids = await start_all(jobs, port, experiments, count, one_by_one)
        started_s = time.perf_counter() - began
        await wait_all(store, experiments)
        outcome = await lateness(store, ids)
    report(experiments, count, started_s, outcome)


def report(experiments: int, count: int, started_s: float, outcome: Outcome) -> None:
    table = Table(title=f"{experiments} experiments x {count} probes, 1 s interval, SQLite")
    columns = (
        "probes",
        "probes/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "skipped",
        "peak running",
    )
    for column in columns:
        table.add_column(column, justify="right")
    stats = outcome.histogram.stats()
    table.add_row(
        str(stats.count),
        f"{outcome.probes_per_s(stats.count + experiments):,.0f}",
        f"{stats.p50_ms:.3f}",
        f"{stats.p90_ms:.3f}",
        f"{stats.p99_ms:.3f}",
        f"{stats.max_ms:.3f}",
        str(outcome.skipped),
        str(outcome.peak_concurrency()),
    )
    console = Console()
    console.print(table)
    console.print(f"created and started in {started_s:.2f} s (phases spread over that time)")
    verdict = "meets" if (stats.p99_ms or 0) < 10 else "misses"
    console.print(f"lateness p99 {stats.p99_ms:.3f} ms {verdict} the 10 ms goal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--one-by-one", action="store_true", help="start them one at a time")
    args = parser.parse_args()
    with targets_process() as port, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        uvloop.run(run(args.experiments, args.count, port, db, args.one_by_one))


if __name__ == "__main__":
    main()
