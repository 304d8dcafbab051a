"""Points per wall-clock period: the loop the targets' request counts (seed 003) and the
pipeline's services share.

Boundaries are multiples of the period since the Unix epoch, so minutes start at :00. The
first interval after start-up is stamped with the start time instead of the period start,
so that a restart within a period adds a point rather than overwriting the one written at
shutdown. A subclass says what one period's points are (``period_lines``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from typing import Protocol


class BatchSink(Protocol):
    """Where period points go: an ``InfluxExporter``."""

    def submit(self, lines: str, points: int) -> None: ...

    def start(self) -> None: ...

    async def close(self) -> None: ...


class PeriodicReporter(abc.ABC):
    """Every ``period_s`` of wall-clock time, ``period_lines`` to ``exporter``."""

    def __init__(self, exporter: BatchSink, period_s: float) -> None:
        self._exporter = exporter
        self._period_ns = max(1, round(period_s * 1e9))
        self._interval_start_ns = time.time_ns()
        self._task: asyncio.Task[None] | None = None

    @property
    def interval_start_ns(self) -> int:
        """Where the interval being counted began (the start-up time, at first)."""
        return self._interval_start_ns

    @abc.abstractmethod
    def period_lines(self, stamp_ns: int) -> list[str]:
        """The points of the interval that ends now, stamped ``stamp_ns``."""

    def start(self) -> None:
        self._exporter.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            boundary_ns = (time.time_ns() // self._period_ns + 1) * self._period_ns
            await _sleep_until(boundary_ns)
            # Woken more than a period late (a suspended machine): close at the last boundary.
            latest_ns = time.time_ns() // self._period_ns * self._period_ns
            self.close_interval(max(boundary_ns, latest_ns))

    def close_interval(self, end_ns: int) -> None:
        """Report the interval since the last boundary as the period that ends at ``end_ns``;
        never blocks (the exporter queues, within its bound)."""
        if end_ns <= self._interval_start_ns:
            return
        period_start_ns = (end_ns - 1) // self._period_ns * self._period_ns
        stamp_ns = max(period_start_ns, self._interval_start_ns)
        self._interval_start_ns = end_ns
        lines = self.period_lines(stamp_ns)
        if lines:
            self._exporter.submit("\n".join(lines), len(lines))

    async def close(self) -> None:
        """Report the partial period up to now, then let the exporter flush (bounded)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.close_interval(time.time_ns())
        await self._exporter.close()


async def _sleep_until(wall_ns: int) -> None:
    while True:
        remaining_ns = wall_ns - time.time_ns()
        if remaining_ns <= 0:
            return
        await asyncio.sleep(remaining_ns / 1e9)  # timers may fire early: check again
