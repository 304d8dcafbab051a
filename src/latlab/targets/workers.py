"""``latlab targets --workers N``: N processes on one port, one reporter over all of them.

The parent binds the port first (``SO_REUSEPORT``, never listening: it only reserves the
port, fails at once if it is taken, and turns port 0 into one port for all); each worker
then listens on it with ``SO_REUSEPORT`` and the kernel spreads connections over them.
The parent serves nothing. In a private temp dir it creates the counts table (a row per
worker plus its own) and the ``/test`` ticket file (unless a lock path or Redis is
configured); it starts the workers (``python -m latlab.targets.worker``) and announces the
port once each has said it listens, reports the
request counts of all of them to InfluxDB, and on SIGINT/SIGTERM stops them (each drains
its connections) and writes the last partial period once they have exited, so the final
point holds every request. A worker that dies on its own stops the others: the parent
exits 1 rather than serve with fewer workers than asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr

from latlab.settings import Settings
from latlab.targets.counters import CountsTable
from latlab.targets.server import GRACE_S, open_reporter
from latlab.targets.worker import stop_on_signals

logger = logging.getLogger("latlab")

Worker = asyncio.subprocess.Process
STOP_TIMEOUT_S = GRACE_S + 5.0


@contextlib.contextmanager
def reserve_port(host: str, port: int) -> Iterator[int]:
    """Hold host:port for workers that will listen with SO_REUSEPORT; yield the port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        yield int(sock.getsockname()[1])


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


async def _run(settings: Settings, counts: CountsTable, counts_path: Path) -> int:
    count = settings.targets_workers
    reporter = open_reporter(settings, counts, row=count)
    if reporter is not None:
        reporter.start()
    stop = asyncio.Event()
    workers: list[Worker] = []
    try:
        with stop_on_signals(stop):
            for row in range(count):
                workers.append(await _spawn(settings, row, count + 1, counts_path))
            ready = await asyncio.gather(*(_ready(worker) for worker in workers))
            if stop.is_set():  # Ctrl-C during start-up stops the workers too
                return 0
            if not all(ready):
                logger.error("a targets worker failed to start")
                return 1
            logger.info(
                "targets on http://%s:%d (%d workers)",
                settings.targets_host,
                settings.targets_port,
                count,
            )
            return 0 if await _until_stop_or_exit(stop, workers) else 1
    finally:
        await _stop(workers)
        if reporter is not None:
            await reporter.close()


async def _spawn(settings: Settings, row: int, rows: int, counts_path: Path) -> Worker:
    # Secrets stay in the parent: only the reporter needs them, and it lives here.
    secrets = {name for name, value in settings if isinstance(value, SecretStr)}
    spec = {
        "settings": settings.model_dump(mode="json", exclude=secrets),
        "row": row,
        "rows": rows,
        "counts": str(counts_path),
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "latlab.targets.worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert worker.stdin is not None
    worker.stdin.write(json.dumps(spec).encode() + b"\n")
    await worker.stdin.drain()
    return worker


async def _ready(worker: Worker) -> bool:
    """A worker says "ready" on stdout once it listens; end of file means it failed."""
    assert worker.stdout is not None
    return (await worker.stdout.readline()).strip() == b"ready"


async def _until_stop_or_exit(stop: asyncio.Event, workers: list[Worker]) -> bool:
    """True when asked to stop; false when a worker exited first."""
    waits = [asyncio.create_task(stop.wait())] + [
        asyncio.create_task(worker.wait()) for worker in workers
    ]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    if stop.is_set():
        return True
    for worker in workers:
        if worker.returncode is not None:
            logger.error("targets worker %d exited with %d", worker.pid, worker.returncode)
    return False


async def _stop(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            await asyncio.wait_for(worker.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            logger.error("targets worker %d did not stop; killing it", worker.pid)
            worker.kill()
            await worker.wait()
        if worker.stdin is not None:
            worker.stdin.close()
