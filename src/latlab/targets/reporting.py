"""Request counts per wall-clock period, written to InfluxDB (seed 003).

At every period boundary (a multiple of the period since the Unix epoch, so minutes start
at :00) the reporter reads the counts table (the sum of every worker's row) and hands the
difference since the last boundary to the exporter as one point:

    requests,request=GETs_per_minute requests_number=<n>i <period start, ns>

plus one ``requests_by_class,method=…,status_class=…`` point per non-zero cell. A period
with no requests is written too (0), so a gap means "not measured", never "idle". The
first interval after start-up is stamped with the start time instead of the period start,
so that a restart within a period adds a point rather than overwriting the one written at
shutdown. One process reports, whatever the number of workers: it reads their counts, so a
point always holds the total (points sharing series and timestamp would overwrite).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from latlab.exporters.influx import escape_tag
from latlab.serving.counting import METHODS, REQUEST_CELLS, STATUS_CLASSES
from latlab.targets.counters import CountsTable

_SERIES = "requests,request=GETs_per_minute requests_number="
_CLASS_SERIES = [
    f"requests_by_class,method={escape_tag(method)},status_class={status_class} requests_number="
    for method in METHODS
    for status_class in STATUS_CLASSES
]


def period_lines(stamp_ns: int, counts: list[int]) -> list[str]:
    """The line-protocol points of one period (``counts``: the request cells)."""
    lines = [f"{_SERIES}{sum(counts)}i {stamp_ns}"]
    by_class = zip(_CLASS_SERIES, counts, strict=True)
    lines += [f"{series}{count}i {stamp_ns}" for series, count in by_class if count]
    return lines


async def _sleep_until(wall_ns: int) -> None:
    while True:
        remaining_ns = wall_ns - time.time_ns()
        if remaining_ns <= 0:
            return
        await asyncio.sleep(remaining_ns / 1e9)  # timers may fire early: check again


class BatchSink(Protocol):
    """Where period points go: an ``InfluxExporter``."""

    def submit(self, lines: str, points: int) -> None: ...

    def start(self) -> None: ...

    async def close(self) -> None: ...


class PeriodReporter:
    def __init__(
        self,
        counts: CountsTable,
        exporter: BatchSink,
        period_s: float,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self._counts = counts
        self._refresh = refresh
        self._exporter = exporter
        self._period_ns = max(1, round(period_s * 1e9))
        self._last = self._request_totals()
        self._interval_start_ns = time.time_ns()
        self._task: asyncio.Task[None] | None = None

    @property
    def interval_start_ns(self) -> int:
        """Where the interval being counted began (the start-up time, at first)."""
        return self._interval_start_ns

    def _request_totals(self) -> list[int]:
        if self._refresh is not None:
            self._refresh()
        return self._counts.totals()[:REQUEST_CELLS]

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
        """Report the counts since the last boundary as the period that ends at ``end_ns``."""
        if end_ns <= self._interval_start_ns:
            return
        totals = self._request_totals()
        deltas = [now - before for now, before in zip(totals, self._last, strict=True)]
        period_start_ns = (end_ns - 1) // self._period_ns * self._period_ns
        stamp_ns = max(period_start_ns, self._interval_start_ns)
        self._last, self._interval_start_ns = totals, end_ns
        lines = period_lines(stamp_ns, deltas)
        self._exporter.submit("\n".join(lines), len(lines))

    async def close(self) -> None:
        """Report the partial period up to now, then let the exporter flush."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.close_interval(time.time_ns())
        await self._exporter.close()
