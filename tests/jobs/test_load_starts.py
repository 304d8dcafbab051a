"""A change asked while a load run's pool starts waits for the pool, and only for as long."""

from __future__ import annotations

import asyncio

from latlab.jobs.kinds.load_starts import PoolStarts


async def test_a_waiter_goes_on_when_the_pool_is_up() -> None:
    starts = PoolStarts()
    with starts.starting(1):
        waiting = asyncio.create_task(starts.wait(1, 10))
        await asyncio.sleep(0)
        assert not waiting.done()
        assert 1 in starts
        starts.up(1)
        await waiting
        assert 1 not in starts


async def test_a_start_that_gives_up_lets_its_waiter_go() -> None:
    starts = PoolStarts()
    waiting: asyncio.Task[None] | None = None
    try:
        with starts.starting(1):
            waiting = asyncio.create_task(starts.wait(1, 10))
            await asyncio.sleep(0)
            raise RuntimeError("the target cannot be reached")
    except RuntimeError:
        pass
    assert waiting is not None
    await waiting
    assert 1 not in starts


async def test_a_run_not_starting_here_is_not_waited_for_and_a_wait_is_bounded() -> None:
    starts = PoolStarts()
    await starts.wait(7, 10)  # at once: nothing to wait for
    with starts.starting(1):
        await starts.wait(1, 0.01)  # the pool is not up: the wait ends on its own
        assert 1 in starts
