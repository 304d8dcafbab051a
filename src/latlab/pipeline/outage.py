"""How the handler and the writer live through a queue that fails for a while.

Redis restarting under load fails every call at once: thousands of in-flight requests, each
feed of the writer. :class:`OutageLog` says so once when the first call fails and once when
one succeeds again, with how long it lasted and how many calls failed meanwhile, instead
of a traceback per call. Between tries it pauses (:func:`pauses`): briefly at first (a blip
is over at once), then a second at most.

Every try first delivers a cancellation the previous call swallowed
(:func:`~latlab.cancellation.deliver_lost_cancel`): without it a stopped handler or writer
could run on for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from latlab.cancellation import deliver_lost_cancel
from latlab.pipeline.queue.base import QueueUnavailable

RETRY_PAUSES_S = (0.05, 0.2, 0.5)
LONGEST_PAUSE_S = 1.0

T = TypeVar("T")


def pauses() -> Iterator[float]:
    """The pauses between one call's tries: quick ones, then every second for ever."""
    yield from RETRY_PAUSES_S
    while True:
        yield LONGEST_PAUSE_S


class OutageLog:
    """Calls to the queue, each tried until it answers: one warning when they start
    failing, one when they work again."""

    def __init__(
        self,
        logger: logging.Logger,
        who: str,
        meanwhile: str = "retrying until the queue answers",
    ) -> None:
        self._logger = logger
        self._who = who
        self._meanwhile = meanwhile  # what the service does until the queue is back
        self._since_s: float | None = None  # monotonic time of the first failure
        self._over_s = float("-inf")  # when the last outage was seen to end
        self._failed_now = 0
        self.failures = 0  # calls that failed, over the process's life

    async def retry(self, doing: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until it returns, pausing between tries; ``doing`` names it in the log."""
        for pause_s in pauses():
            deliver_lost_cancel()
            started_s = time.monotonic()
            try:
                result = await call()
            except Exception as exc:
                self.failed(doing, exc, started_s)
                await asyncio.sleep(pause_s)
                continue
            self.succeeded(started_s)
            return result
        raise AssertionError("pauses() never ends")

    def failed(self, doing: str, exc: BaseException, started_s: float) -> None:
        """A call begun at ``started_s`` (``time.monotonic()``) failed."""
        self.failures += 1
        self._failed_now += 1
        # Already said, or a call begun before the queue came back: nothing new.
        if self._since_s is not None or started_s < self._over_s:
            return
        self._since_s = time.monotonic()
        # A queue that is down says why in one line; anything else is a bug: its traceback.
        trace = None if isinstance(exc, QueueUnavailable) else exc
        why = str(exc) or type(exc).__name__
        self._logger.warning(
            "%s: %s failed; %s: %s", self._who, doing, self._meanwhile, why, exc_info=trace
        )

    def succeeded(self, started_s: float) -> None:
        """A call begun at ``started_s`` worked (one begun before the first failure says
        nothing about the queue now)."""
        if self._since_s is None or started_s < self._since_s:
            return
        self._over_s = time.monotonic()
        self._logger.warning(
            "%s: the queue answers again after %.1f s (%d calls failed meanwhile)",
            self._who,
            self._over_s - self._since_s,
            self._failed_now,
        )
        self._since_s = None
        self._failed_now = 0
