"""A call that swallows its task's cancellation, as redis-py's commands can on Python 3.11
(``asyncio.wait_for`` returns when a cancel meets a completed send, CPython gh-86296), and
the check that a loop over such calls still ends when cancelled."""

from __future__ import annotations

import asyncio

import pytest


async def swallow_the_cancel(entered: asyncio.Event) -> None:
    """Set ``entered``, then return (not raise) when this task is cancelled."""
    entered.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        return
    raise AssertionError("waited for ever")


async def ends_when_cancelled(task: asyncio.Task[None], entered: asyncio.Event) -> None:
    """Once ``entered``, cancel ``task``: it must end with ``CancelledError`` within 5 s."""
    await entered.wait()
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
