"""``latlab workers``: the fleet as Redis knows it, as a table or JSON."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from latlab.cli.startup import StartupError, reporting_startup
from latlab.coordination.fleet import WorkerInfo
from latlab.serving.runner import run
from latlab.settings import Settings


def show_workers(*, as_json: bool) -> None:
    with reporting_startup(verbose=False):
        settings = Settings()
        if settings.redis_url is None:
            raise StartupError("no fleet without Redis: set LATLAB_REDIS_URL")
        workers = run(_live(settings.redis_url, settings.redis_prefix))
    if as_json:  # the shape of GET /api/v1/workers
        sys.stdout.write(json.dumps({"data": [_public(worker) for worker in workers]}) + "\n")
        return
    Console().print(_table(workers, datetime.now(UTC)))


async def _live(url: str, prefix: str) -> list[WorkerInfo]:
    from latlab.coordination.fleet import Fleet
    from latlab.coordination.redis import RedisCoordinator, open_client

    client = open_client(url, RedisCoordinator.lease_s / 3)
    try:
        return await Fleet(client, prefix, RedisCoordinator.lease_s).live()
    finally:
        await client.aclose()


def _public(worker: WorkerInfo) -> dict[str, object]:
    return {
        "id": worker.id,
        "location": worker.location,
        "capacity": worker.capacity,
        "jobs": [{"kind": kind, "id": job_id} for kind, job_id in worker.jobs],
        "last_heartbeat": worker.last_heartbeat.isoformat(),
    }


def _table(workers: list[WorkerInfo], now: datetime) -> Table:
    table = Table(title=f"{len(workers)} worker(s)" if workers else "no live worker")
    for column in ("id", "location", "capacity", "jobs", "heartbeat"):
        table.add_column(column, justify="right" if column == "capacity" else "left")
    for worker in workers:
        jobs = ", ".join(f"{kind} {job_id}" for kind, job_id in worker.jobs) or "-"
        age_s = (now - worker.last_heartbeat).total_seconds()
        table.add_row(worker.id, worker.location, str(worker.capacity), jobs, f"{age_s:.1f} s ago")
    return table
