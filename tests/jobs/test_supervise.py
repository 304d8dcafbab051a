"""Supervised loops run again after a failure, and always end when cancelled."""

from __future__ import annotations

import asyncio

import pytest

from latlab.jobs.supervise import Backoff, supervise


async def test_a_loop_that_swallows_its_cancellation_still_ends() -> None:
    entered = asyncio.Event()
    runs = 0

    async def swallowing() -> None:
        nonlocal runs
        runs += 1
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # as some client libraries' listeners do

    task = asyncio.create_task(supervise("swallower", swallowing))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert runs == 1


async def test_a_loop_that_turns_its_cancellation_into_an_error_still_ends() -> None:
    entered = asyncio.Event()

    async def converting() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("closed") from None

    task = asyncio.create_task(supervise("converter", converting))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_a_failing_loop_is_run_again() -> None:
    runs = 0
    done = asyncio.Event()

    async def failing_twice() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise OSError("down")
        done.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervise("flaky", failing_twice, Backoff(0.001, 0.002)))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 3
