"""Several processes serving one port: the supervisor's side.

The parent binds the port first (``reserve_port``: ``SO_REUSEPORT``, never listening; it
only reserves the port, fails at once if it is taken, and turns port 0 into one port for
all); each worker then listens on it with ``SO_REUSEPORT`` and the kernel spreads
connections over them. ``run_workers`` starts one ``python -m <module>`` per spec (the
worker's side is in ``runner.py``), waits until each says it listens, and on SIGINT/SIGTERM
sends each a SIGTERM (each drains its connections) and waits for them to exit. A worker
that dies on its own stops the others: the parent returns 1 rather than serve with fewer
workers than asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from latlab.serving.runner import READY
from latlab.serving.server import GRACE_S
from latlab.serving.signals import stop_on_signals

logger = logging.getLogger(__name__)

Worker = asyncio.subprocess.Process
# A worker drains its connections for up to GRACE_S; past this it is killed.
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


async def run_workers(
    module: str,
    specs: Sequence[Mapping[str, Any]],
    on_ready: Callable[[], None] = lambda: None,
) -> int:
    """Run a worker per spec until SIGINT/SIGTERM (0) or until one fails (1);
    ``on_ready`` once every worker listens."""
    stop = asyncio.Event()
    workers: list[Worker] = []
    try:
        with stop_on_signals(stop):
            for spec in specs:
                workers.append(await _spawn(module, spec))
            ready = await asyncio.gather(*(_ready(worker) for worker in workers))
            if stop.is_set():  # Ctrl-C during start-up stops the workers too
                return 0
            if not all(ready):
                logger.error("a %s worker failed to start", module)
                return 1
            on_ready()
            return 0 if await _until_stop_or_exit(stop, workers) else 1
    finally:
        await _stop(workers, STOP_TIMEOUT_S)


async def _spawn(module: str, spec: Mapping[str, Any]) -> Worker:
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert worker.stdin is not None
    worker.stdin.write(json.dumps(spec).encode() + b"\n")
    await worker.stdin.drain()
    return worker


async def _ready(worker: Worker) -> bool:
    """A worker says it is ready on stdout once it listens; end of file means it failed."""
    assert worker.stdout is not None
    return (await worker.stdout.readline()).strip() == READY


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
            logger.error("worker %d exited with %d", worker.pid, worker.returncode)
    return False


async def _stop(workers: list[Worker], timeout_s: float) -> None:
    for worker in workers:
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            await asyncio.wait_for(worker.wait(), timeout_s)
        except TimeoutError:
            logger.error("worker %d did not stop; killing it", worker.pid)
            worker.kill()
            await worker.wait()
        if worker.stdin is not None:
            worker.stdin.close()
