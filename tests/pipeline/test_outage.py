"""OutageLog.retry: a stop reaches the loop of queue calls even when a call swallowed it."""

from __future__ import annotations

import asyncio
import logging

from latlab.pipeline.outage import OutageLog
from swallowed import ends_when_cancelled, swallow_the_cancel


async def test_a_loop_of_retried_calls_stops_although_a_call_swallowed_the_cancel() -> None:
    outage = OutageLog(logging.getLogger("test"), "tester")
    entered = asyncio.Event()
    tries = 0

    async def read() -> None:
        nonlocal tries
        tries += 1
        if tries == 1:
            await swallow_the_cancel(entered)
        else:
            await asyncio.sleep(0)  # a round trip: the loop runs (and a timeout can fire)

    async def follow() -> None:
        while True:  # as the writer's and the handler's feeds
            await outage.retry("reading", read)

    await ends_when_cancelled(asyncio.create_task(follow()), entered)
    assert tries == 1


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
