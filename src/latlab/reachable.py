"""Waiting at start-up for a dependency that is still coming up (a database started beside
LatLab), shared by the store and the coordinator: try, back off, try once more at the
deadline, then give up with the last failure's own words."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# A client that ignores its own timeouts is cut this long after the deadline.
GRACE_S = 0.25
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 0.5


async def until_reachable(
    opener: Callable[[], Awaitable[T]],
    timeout_s: float,
    *,
    transient: tuple[type[BaseException], ...],
    gave_up: Callable[[str], Exception],
    fatal: tuple[type[BaseException], ...] = (),
) -> T:
    """``await opener()`` until it succeeds; failures of a ``transient`` type (but not of a
    ``fatal`` one: a wrong password) are retried until ``timeout_s`` has passed, then
    ``gave_up(cause)`` is raised from the last of them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay_s = FIRST_DELAY_S
    cause = "no answer"
    retried: tuple[type[BaseException], ...] = (*transient, TimeoutError)
    while True:
        try:
            async with asyncio.timeout_at(deadline + GRACE_S):
                return await opener()
        except fatal:
            raise
        except retried as exc:
            cause = brief(exc) or cause  # the guard's own timeout says nothing new
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise gave_up(cause) from exc
        await asyncio.sleep(min(delay_s, remaining_s))  # the last try at the deadline
        delay_s = min(delay_s * 2, MAX_DELAY_S)


def brief(exc: BaseException, limit: int = 120) -> str:
    """The driver's own words (not an adapter's wrapper) on one short line, or ""."""
    lines = str(exc.__cause__ or exc).splitlines()
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
