"""Load processes started ahead: taken by pools, capped, ended when not taken in time."""

from __future__ import annotations

import asyncio
import os
import socket

from scripted import ScriptedTarget

from harness import wait_for
from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.pool import LoadPool
from latlab.measure.load.warm import WarmProcesses, ended, spawn
from latlab.measure.request import parse_url
from load_workers import kept, load_workers

LOCAL = (int(socket.AF_INET), "127.0.0.1")


async def counted(warm: WarmProcesses, count: int) -> None:
    async def reached() -> bool:
        return warm.count == count

    await wait_for(reached, 20, f"{count} warm processes")


async def test_a_new_process_taken_stands_for_one_asked_for_and_not_started_yet() -> None:
    """A resume quicker than the service: its pool starts a process of its own, and the one
    asked for at the pause is not started to idle beside it."""
    warm = WarmProcesses()
    warm.want(2)
    spawned = warm.take()
    try:
        assert (warm.count, warm.wanted) == (0, 1)
    finally:
        await ended(spawned)


async def test_the_processes_asked_for_are_started_and_taken_before_new_ones() -> None:
    async with kept(WarmProcesses()) as warm:
        warm.want(2)
        await counted(warm, 2)
        started = sorted(load_workers(os.getpid()))
        taken = [warm.take(), warm.take()]
        assert sorted(process.pid for process, _ in taken) == started
        assert warm.count == 0
        fresh = warm.take()  # none left warm: a new one
        assert fresh[0].pid not in started
        await asyncio.gather(*(ended(spawned) for spawned in [*taken, fresh]))
    assert load_workers(os.getpid()) == []


async def test_no_more_than_the_most_are_kept_however_many_are_asked_for() -> None:
    async with kept(WarmProcesses(most=2)) as warm:
        warm.want(3)
        warm.want(2)
        await counted(warm, 2)
        assert len(load_workers(os.getpid())) == 2


async def test_processes_not_taken_in_time_end() -> None:
    async with kept(WarmProcesses(keep_s=0.3)) as warm:
        warm.want(2)
        await counted(warm, 2)
        await counted(warm, 0)

        async def gone() -> bool:
            return load_workers(os.getpid()) == []

        await wait_for(gone, 20, "the expired processes to end")


async def test_a_process_that_died_while_warm_is_not_handed_out() -> None:
    async with kept(WarmProcesses()) as warm:
        warm.want(1)
        await counted(warm, 1)
        [dead] = load_workers(os.getpid())
        os.kill(dead, 9)

        async def reaped() -> bool:
            return dead not in load_workers(os.getpid())

        await wait_for(reaped, 20, "the killed process to die")
        spawned = warm.take()
        assert spawned[0].pid != dead
        assert spawned[0].poll() is None
        await ended(spawned)


async def test_close_ends_every_warm_process() -> None:
    warm = WarmProcesses()
    async with kept(warm):
        warm.want(3)
        await counted(warm, 3)
    assert warm.count == 0
    assert load_workers(os.getpid()) == []


async def test_a_pool_of_warm_processes_runs_its_plan_exactly() -> None:
    async with kept(WarmProcesses()) as warm, ScriptedTarget() as target:
        warm.want(2)
        await counted(warm, 2)
        started = sorted(load_workers(os.getpid()))
        plan = LoadPlan(
            parse_url(f"http://127.0.0.1:{target.port}/"),
            connections=4,
            requests=1001,
            duration_s=None,
            workers=2,
        )
        pool = LoadPool(plan, LOCAL, warm.take)
        try:
            await pool.start()
            assert sorted(load_workers(os.getpid())) == started
            requests = sum([second.requests async for second in pool.seconds()])
        finally:
            await pool.close()
    assert requests == target.requests == pool.sent == 1001


async def test_a_process_never_given_a_plan_ends_when_its_pipe_closes() -> None:
    spawned = spawn()
    await ended(spawned)
    assert spawned[0].returncode == 0
