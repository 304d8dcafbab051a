"""The running quota: how many jobs of a kind may run at once, across processes.

The count comes from the store, so every process sharing it sees the others' jobs. Counting
is not free (~20 ms over 200,000 running bots on SQLite), so a count is reused for a second
while it leaves room: the reservations made here since are added to it, and past 90 % of the
limit, or to refuse, the store is counted again. Checking and creating are not one
transaction: requests in flight at once (in this process or another) may overshoot the limit
by at most their number.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from latlab.storage import JobState, Store

COUNT_REUSE_S = 1.0
TRUSTED_SHARE = 0.9  # past this share of the limit, every reservation counts in the store
RETRY_AFTER_S = 5


class QuotaExceeded(Exception):
    """A quota refuses the request; nothing was created or started (HTTP 429)."""

    def __init__(self, message: str, limit: int, setting: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.setting = setting
        self.retry_after_s = retry_after_s

    def as_json(self) -> dict[str, Any]:
        """The 429 answer: what refused, the limit and the setting that sets it."""
        return {"detail": str(self), "limit": self.limit, "setting": self.setting}


@dataclass(frozen=True, slots=True)
class RunningLimit:
    """At most ``most`` jobs of a kind running at once; ``setting`` says where it is set."""

    most: int
    setting: str
    noun: str

    def exceeded(self, running: int, asked: int) -> QuotaExceeded:
        message = (
            f"too many {self.noun} running: {running} of at most {self.most} ({self.setting}), "
            f"{asked} more asked; stop some or raise {self.setting}"
        )
        return QuotaExceeded(message, self.most, self.setting, RETRY_AFTER_S)


@dataclass(slots=True)
class _Count:
    stored: int = 0  # running in the store when last counted
    counted_at: float = float("-inf")
    since: int = 0  # started here since that count
    in_flight: int = 0  # reserved here, not started yet


class RunningCounts:
    """Reservations against each kind's running quota."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._counts: dict[str, _Count] = {}

    @contextlib.asynccontextmanager
    async def reserved(self, kind: str, asked: int, limit: RunningLimit) -> AsyncIterator[None]:
        """Hold room for ``asked`` more running jobs of ``kind`` while the body starts them;
        raise :class:`QuotaExceeded` (before the body) if there is none."""
        count = self._counts.setdefault(kind, _Count())
        if not self._trusted(count, asked, limit):
            await self._recount(kind, count)
            running = count.stored + count.since + count.in_flight
            if running + asked > limit.most:
                raise limit.exceeded(running, asked)
        count.in_flight += asked
        try:
            yield
        finally:
            count.in_flight -= asked
        count.since += asked

    def _trusted(self, count: _Count, asked: int, limit: RunningLimit) -> bool:
        fresh = self._clock() - count.counted_at < COUNT_REUSE_S
        expected = count.stored + count.since + count.in_flight + asked
        return fresh and expected <= limit.most * TRUSTED_SHARE

    async def _recount(self, kind: str, count: _Count) -> None:
        # limit=1, not 0: MongoDB reads a limit of 0 as no limit.
        page = await self._store.list_jobs(kind, states={JobState.RUNNING}, limit=1)
        count.stored, count.since, count.counted_at = page.total, 0, self._clock()
