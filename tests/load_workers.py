"""The load worker processes of a parent, read from /proc: are they there, are they gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from latlab.measure.load.warm import WarmProcesses

WORKER_MODULE = b"latlab.measure.load.process"


def load_workers(parent_pid: int) -> list[int]:
    """Live load worker processes whose parent is ``parent_pid`` (zombies count as dead)."""
    return [pid for pid, ppid in _workers() if ppid == parent_pid]


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running as load workers (a reused pid is not one)."""
    return [pid for pid, _ in _workers() if pid in pids]


def _workers() -> list[tuple[int, int]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z" and WORKER_MODULE in cmdline:
            found.append((int(entry.name), int(ppid)))
    return found


@asynccontextmanager
async def kept(warm: WarmProcesses) -> AsyncIterator[WarmProcesses]:
    """``warm`` with its service running, every process ended afterwards."""
    service = asyncio.create_task(warm.keep())
    try:
        yield warm
    finally:
        service.cancel()
        await asyncio.gather(service, return_exceptions=True)
        await warm.close()
