"""The pipeline in tests: its settings, and reading the writer's files."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from latlab.pipeline.queue import PipelineQueue
from latlab.pipeline.receipts import Incoming, Receipt
from latlab.settings import Settings

Reopen = Callable[[], Awaitable[PipelineQueue]]  # opens the test's queue; again: a restart

HEADERS = {"2.txt": " | id | receive_time |", "1.txt": " | id | receive_time | write_time |"}


def receipts(first: int, count: int) -> list[Receipt]:
    """Receipts ``first`` … ``first + count - 1``, as a queue would number them."""
    now = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
    return [
        Incoming(str(uuid.uuid4()), 0.5, now).receipt(seq) for seq in range(first, first + count)
    ]


def read_table(path: Path) -> list[list[str]]:
    """The rows after the header, each a list of its cells."""
    lines = path.read_text().splitlines()
    assert lines[0] == HEADERS[path.name]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[1:]]


def lines_after_header(path: Path) -> int:
    if not path.exists():
        return 0
    return max(0, path.read_bytes().count(b"\n") - 1)


async def wait_for_results(out_dir: Path, count: int, timeout_s: float = 20.0) -> None:
    """Until ``1.txt`` has ``count`` lines after its header."""
    async with asyncio.timeout(timeout_s):
        # Another process (or a thread-free writer on this loop) appends: only polling sees it.
        while lines_after_header(out_dir / "1.txt") < count:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def pipeline_settings(root: Path, **extra: object) -> Settings:
    """Every service on a free port, the store and the files under ``root``; no Redis."""
    ports = {f"pipeline_{role}_port": 0 for role in ("client", "receiver", "handler", "writer")}
    return Settings(
        storage_url=f"sqlite+aiosqlite:///{root / 'latlab.db'}",
        pipeline_out_dir=str(root / "out"),
        redis_url=None,
        **ports,  # type: ignore[arg-type]
        # Not in the test process: a frozen cycle is never collected, nor its leaks warned of.
        **{"freeze_gc": False, **extra},  # type: ignore[arg-type]
    )


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the services' loops a test started, and wait until they are done."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
