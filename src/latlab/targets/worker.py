"""How a targets process lives: its event loop, signals, and the two ways it serves.

``serve_until_signalled`` is ``latlab targets`` with one worker: the targets in this
process until SIGINT or SIGTERM. ``python -m latlab.targets.worker`` is one worker of
``latlab targets --workers N`` (``workers.py`` starts it). Its settings arrive as one JSON
line on stdin, which then stays open: end of file means the parent is gone, and the worker
shuts down as on SIGTERM rather than live on orphaned. It writes ``ready`` on stdout once it
listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from latlab.settings import Settings
from latlab.targets.counters import CountsTable
from latlab.targets.server import PUBLISH_S, TargetsServer, open_targets, open_tickets

logger = logging.getLogger("latlab")

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop where it exists (not on Windows), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed wherever the tests run
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (a graceful shutdown) instead of ending the process."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def serve_until_signalled(settings: Settings) -> None:
    """``latlab targets`` with one worker: serve in this process until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with open_targets(settings) as server:
            logger.info("targets on http://%s:%d", settings.targets_host, server.port)
            await stop.wait()
            logger.info("targets: shutting down")


class _EndOfInput(asyncio.Protocol):
    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop.set()


@contextlib.asynccontextmanager
async def _stop_at_end_of_input(stop: asyncio.Event) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(lambda: _EndOfInput(stop), sys.stdin)
    try:
        yield
    finally:
        transport.close()


async def serve_worker(settings: Settings, row: int, rows: int, counts_path: Path) -> None:
    counts = CountsTable.attach(counts_path, rows)
    server = TargetsServer(
        work_s=settings.targets_work_s, tickets=open_tickets(settings), counts=counts, row=row
    )
    stop = asyncio.Event()
    try:
        with stop_on_signals(stop):
            async with _stop_at_end_of_input(stop):
                host, port = settings.targets_host, settings.targets_port
                await server.listen(host, port, reuse_port=True, publish_s=PUBLISH_S)
                sys.stdout.write("ready\n")  # to the parent, which waits for every worker
                sys.stdout.flush()
                await stop.wait()
    finally:
        await server.close()
        counts.close()


def main() -> None:
    spec: dict[str, Any] = json.loads(sys.stdin.buffer.readline())
    settings = Settings(**spec["settings"])
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s[worker {spec['row']}]: %(message)s",
    )
    run(serve_worker(settings, spec["row"], spec["rows"], Path(spec["counts"])))


if __name__ == "__main__":
    main()
