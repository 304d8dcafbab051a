"""Time for schedules: a monotonic clock to plan on, and its mapping to UTC to record."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; schedules are planned on it."""
        ...

    async def sleep_until(self, deadline: float) -> None: ...

    def to_utc(self, monotonic_s: float) -> datetime:
        """The UTC time of a monotonic instant (one fixed offset, so differences stay exact)."""
        ...


class SystemClock:
    """``time.monotonic``, the clock asyncio's timers run on.

    Not ``loop.time()``: uvloop caches that per loop iteration at millisecond resolution, which
    would hide the very lateness we record.
    """

    def __init__(self) -> None:
        self._epoch = datetime.fromtimestamp(time.time(), UTC)
        self._epoch_monotonic = time.monotonic()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        # Timers may fire up to a millisecond early (uvloop rounds to ms); never start early.
        while (remaining_s := deadline - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining_s)

    def to_utc(self, monotonic_s: float) -> datetime:
        return self._epoch + timedelta(seconds=monotonic_s - self._epoch_monotonic)
