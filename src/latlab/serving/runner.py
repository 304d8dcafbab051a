"""How a serving process lives: its event loop, and its side of a supervisor's contract.

A worker started by ``workers.run_workers`` reads its spec as one JSON line on stdin,
which then stays open: end of file means the parent is gone, and the worker stops as on
SIGTERM rather than live on orphaned. It writes ``ready`` on stdout once it listens.

    def main() -> None:
        spec = read_spec()
        run(serve(spec))

    async def serve(spec: dict[str, Any]) -> None:
        async with worker_stop() as stop:
            ...  # listen
            announce_ready()
            await stop.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from latlab.serving.signals import stop_on_signals

T = TypeVar("T")
READY = b"ready"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop where it exists (not on Windows), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed wherever the tests run
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result


def read_spec() -> dict[str, Any]:
    """The worker's spec: the first line its parent wrote on stdin."""
    spec: dict[str, Any] = json.loads(sys.stdin.buffer.readline())
    return spec


def announce_ready() -> None:
    """Tell the parent, which waits for every worker, that this one listens."""
    sys.stdout.buffer.write(READY + b"\n")
    sys.stdout.flush()


class _EndOfInput(asyncio.Protocol):
    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop.set()


@contextlib.asynccontextmanager
async def worker_stop() -> AsyncIterator[asyncio.Event]:
    """An event set by SIGINT, SIGTERM or the end of stdin (the parent is gone)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with stop_on_signals(stop):
        transport, _ = await loop.connect_read_pipe(lambda: _EndOfInput(stop), sys.stdin)
        try:
            yield stop
        finally:
            transport.close()
