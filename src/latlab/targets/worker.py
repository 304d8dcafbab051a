"""The two ways a targets process serves on its own.

``serve_until_signalled`` is ``latlab targets`` with one worker: the targets in this
process until SIGINT or SIGTERM. ``python -m latlab.targets.worker`` is one worker of
``latlab targets --workers N`` (``workers.py`` starts it; its life as a worker, spec on
stdin and ``ready`` on stdout, is ``serving.runner``'s).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from latlab.serving.runner import announce_ready, read_spec, run, worker_stop
from latlab.serving.signals import stop_on_signals
from latlab.settings import Settings
from latlab.targets.counters import CountsTable
from latlab.targets.server import (
    PUBLISH_S,
    TargetsServer,
    open_targets,
    open_tickets,
    server_limits,
)

logger = logging.getLogger("latlab")


async def serve_until_signalled(settings: Settings) -> None:
    """``latlab targets`` with one worker: serve in this process until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with open_targets(settings) as server:
            logger.info("targets on http://%s:%d", settings.targets_host, server.port)
            await stop.wait()
            logger.info("targets: shutting down")


async def serve_worker(settings: Settings, row: int, rows: int, counts_path: Path) -> None:
    counts = CountsTable.attach(counts_path, rows)
    server = TargetsServer(
        work_s=settings.targets_work_s,
        tickets=open_tickets(settings),
        counts=counts,
        row=row,
        limits=server_limits(settings),
    )
    try:
        async with worker_stop() as stop:
            host, port = settings.targets_host, settings.targets_port
            await server.listen(host, port, reuse_port=True, publish_s=PUBLISH_S)
            announce_ready()
            await stop.wait()
    finally:
        await server.close()
        counts.close()


def main() -> None:
    spec = read_spec()
    settings = Settings(**spec["settings"])
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s[worker {spec['row']}]: %(message)s",
    )
    run(serve_worker(settings, spec["row"], spec["rows"], Path(spec["counts"])))


if __name__ == "__main__":
    main()
