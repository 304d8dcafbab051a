"""Long-lived loops that survive blips: retry with backoff, one log line per outage."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from latlab.storage import StoreUnavailable

T = TypeVar("T")
log = logging.getLogger("latlab.jobs")


@dataclass(slots=True)
class Backoff:
    """Exponential delays with jitter, from ``first_s`` up to ``max_s``; reset after a success."""

    first_s: float = 0.05
    max_s: float = 2.0
    attempts: int = 0

    def next_s(self) -> float:
        delay_s = min(self.max_s, self.first_s * 2**self.attempts)
        self.attempts += 1
        # Jitter spreads the retries of many jobs so a returning store is not hit all at once.
        return float(delay_s * (0.5 + random.random() / 2))

    def reset(self) -> None:
        self.attempts = 0


class Outage:
    """Logs the first failure of an outage and its end, not every retry in between."""

    def __init__(self, what: str, logger: logging.Logger = log) -> None:
        self.what = what
        self.failures = 0
        self._log = logger

    def failed(self, exc: BaseException) -> None:
        if self.failures == 0:
            self._log.warning("%s failed, retrying: %s: %s", self.what, type(exc).__name__, exc)
        self.failures += 1

    def recovered(self) -> None:
        if self.failures:
            self._log.warning("%s works again after %d failure(s)", self.what, self.failures)
        self.failures = 0


async def supervise(
    name: str, work: Callable[[], Awaitable[None]], backoff: Backoff | None = None
) -> None:
    """Run ``work`` for ever: if it raises, log once per outage, back off and run it again.

    ``work`` is a loop that normally never returns; if it does, it is started again too, so
    a listener whose connection closed cleanly reconnects. A run that lasted longer than the
    longest backoff counts as a recovery: the next failure starts a new outage (and a log
    line). Cancellation ends supervision.
    """
    backoff = backoff or Backoff()
    outage = Outage(name)
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    while True:
        started_s = loop.time()
        try:
            await work()
            failure: Exception | None = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of a supervised loop is retried, never fatal
            failure = exc
        if current is not None and current.cancelling():
            # A library swallowed our cancellation, into another error or into a plain
            # return (a Redis listener did, and a shutdown waited for ever): honour it.
            raise asyncio.CancelledError from failure
        if loop.time() - started_s >= backoff.max_s:
            outage.recovered()
            backoff.reset()
        if failure is not None:
            outage.failed(failure)
        await asyncio.sleep(backoff.next_s())


async def retried(
    what: str,
    op: Callable[[], Awaitable[T]],
    errors: tuple[type[Exception], ...] = (StoreUnavailable,),
) -> T:
    """``op()``, retried with backoff while it raises one of ``errors`` (logged once per
    outage); other errors are raised as they are."""
    backoff = Backoff()
    outage = Outage(what)
    while True:
        try:
            value = await op()
        except errors as exc:
            outage.failed(exc)
            await asyncio.sleep(backoff.next_s())
            continue
        outage.recovered()
        return value


async def until_stored(what: str, op: Callable[[], Awaitable[T]]) -> T:
    """``op()``, retried while the store is unavailable."""
    return await retried(what, op)
