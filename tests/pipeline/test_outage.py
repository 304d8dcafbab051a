"""OutageLog.retry: a stop reaches the loop of queue calls even when a call swallowed it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from latlab.pipeline.outage import OutageLog


class SwallowingCall:
    """A queue call whose first try returns when its task is cancelled, instead of raising:
    what ``asyncio.wait_for`` does on Python 3.11 when the cancel meets a completed send."""

    def __init__(self) -> None:
        self.tries = 0
        self.entered = asyncio.Event()

    async def __call__(self) -> str:
        self.tries += 1
        if self.tries > 1:
            await asyncio.sleep(0)  # a round trip: the loop runs (and a timeout can fire)
            return "answered"
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "answered, the cancel lost"
        raise AssertionError("waited for ever")


async def test_a_loop_of_retried_calls_stops_although_a_call_swallowed_the_cancel() -> None:
    outage = OutageLog(logging.getLogger("test"), "tester")
    call = SwallowingCall()

    async def follow() -> None:
        while True:  # as the writer's and the handler's feeds
            await outage.retry("reading", call)

    task = asyncio.create_task(follow())
    await call.entered.wait()
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert call.tries == 1


async def test_a_task_never_cancelled_goes_on_retrying() -> None:
    outage = OutageLog(logging.getLogger("test"), "tester")
    tries = 0

    async def fails_once() -> str:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise ConnectionError("down")
        return "answered"

    assert await outage.retry("reading", fails_once) == "answered"
    assert tries == 2
