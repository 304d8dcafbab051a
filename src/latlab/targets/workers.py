"""``latlab targets --workers N``: N processes on one port, one reporter over all of them.

The processes, the shared port and the stop on SIGINT/SIGTERM are ``serving.workers``'s.
What the targets add: in a private temp dir, the counts table (a row per worker plus the
parent's) and the ``/test`` ticket file (unless a lock path or Redis is configured); the
parent serves nothing, reports the request counts of all workers to InfluxDB, and writes
the last partial period once they have exited, so the final point holds every request.
Workers are ``python -m latlab.targets.worker`` processes.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from latlab.serving.workers import reserve_port, run_workers
from latlab.settings import Settings
from latlab.targets.counters import CountsTable
from latlab.targets.server import open_reporter

logger = logging.getLogger("latlab")

WORKER_MODULE = "latlab.targets.worker"


async def supervise(settings: Settings) -> int:
    """Run the workers until SIGINT/SIGTERM (exit status 0) or until one fails (1)."""
    host, workers = settings.targets_host, settings.targets_workers
    with (
        tempfile.TemporaryDirectory(prefix="latlab-targets-") as tmp,
        reserve_port(host, settings.targets_port) as port,
    ):
        counts = CountsTable.create(Path(tmp) / "counts", rows=workers + 1)
        lock_path = settings.targets_lock_path or str(Path(tmp) / "test.tickets")
        update = {"targets_port": port, "targets_lock_path": lock_path}
        try:
            return await _run(settings.model_copy(update=update), counts, Path(tmp) / "counts")
        finally:
            counts.close()


def worker_specs(settings: Settings, counts_path: Path) -> list[dict[str, Any]]:
    """What each worker reads on stdin: the settings, its row and the table's file."""
    # Secrets stay in the parent: only the reporter needs them, and it lives here.
    secrets = {name for name, value in settings if isinstance(value, SecretStr)}
    dumped = settings.model_dump(mode="json", exclude=secrets)
    count = settings.targets_workers
    return [
        {"settings": dumped, "row": row, "rows": count + 1, "counts": str(counts_path)}
        for row in range(count)
    ]


async def _run(settings: Settings, counts: CountsTable, counts_path: Path) -> int:
    count = settings.targets_workers
    reporter = open_reporter(settings, counts, row=count)
    if reporter is not None:
        reporter.start()

    def announce() -> None:
        host, port = settings.targets_host, settings.targets_port
        logger.info("targets on http://%s:%d (%d workers)", host, port, count)

    try:
        return await run_workers(WORKER_MODULE, worker_specs(settings, counts_path), announce)
    finally:
        if reporter is not None:
            await reporter.close()  # after the workers: the last answers are counted too
