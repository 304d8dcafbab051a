"""Worker processes: exact totals across them, steering, and no orphan outliving its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from scripted import ScriptedTarget

from harness import wait_for
from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.pool import LoadError, LoadPool
from latlab.measure.load.seconds import SecondStats
from latlab.measure.load.summary import RunTotals
from latlab.measure.request import parse_url

LOCAL = (int(socket.AF_INET), "127.0.0.1")


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}/"


async def test_requests_are_split_exactly_across_workers_and_merged() -> None:
    async with ScriptedTarget() as target:
        plan = LoadPlan(
            parse_url(url(target.port)), connections=5, requests=5001, duration_s=None, workers=2
        )
        pool = LoadPool(plan, LOCAL)
        totals = RunTotals(open_model=False)
        try:
            await pool.start()
            async for second in pool.seconds():
                totals.add(second)
        finally:
            await pool.close()
    assert totals.requests == target.requests == pool.sent == 5001
    assert totals.errors == 0


async def test_a_rate_change_reaches_every_worker_within_a_second() -> None:
    async with ScriptedTarget() as target:
        plan = LoadPlan(
            parse_url(url(target.port)), connections=4, rate=200.0, duration_s=3.0, workers=2
        )
        pool = LoadPool(plan, LOCAL)
        seconds: list[SecondStats] = []
        try:
            await pool.start()
            async for second in pool.seconds():
                seconds.append(second)
                if second.second == 0:
                    pool.set_rate(600.0)  # told a second in (the merge waits for all)
        finally:
            await pool.close()
    assert 190 <= seconds[0].requests <= 210
    assert 570 <= seconds[2].requests <= 630
    with pytest.raises(ValueError, match="closed-model"):
        LoadPool(LoadPlan(parse_url(url(target.port))), LOCAL).set_rate(1.0)


async def test_a_worker_that_dies_fails_the_run() -> None:
    async with ScriptedTarget() as target:
        plan = LoadPlan(parse_url(url(target.port)), connections=2, duration_s=30.0, workers=2)
        pool = LoadPool(plan, LOCAL)
        try:
            await pool.start()
            pool._workers[0].process.kill()
            with pytest.raises(LoadError, match="died"):
                async for _ in pool.seconds():
                    pass
        finally:
            await pool.close()


_PARENT = textwrap.dedent(
    """
    import asyncio, socket, sys
    from latlab.measure.load.plan import LoadPlan
    from latlab.measure.load.pool import LoadPool
    from latlab.measure.request import parse_url

    async def main():
        plan = LoadPlan(parse_url(sys.argv[1]), connections=2, duration_s=60.0, workers=2)
        pool = LoadPool(plan, (int(socket.AF_INET), "127.0.0.1"))
        await pool.start()
        print(*(w.process.pid for w in pool._workers), flush=True)
        async for _ in pool.seconds():
            pass

    asyncio.run(main())
    """
)


async def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    async with ScriptedTarget() as target:
        script = tmp_path / "parent.py"
        script.write_text(_PARENT)
        parent = await asyncio.create_subprocess_exec(
            sys.executable, str(script), url(target.port), stdout=subprocess.PIPE
        )
        assert parent.stdout is not None
        pids = [int(pid) for pid in (await parent.stdout.readline()).split()]
        await wait_for(_has_requests(target), what="the load to begin")
        parent.send_signal(signal.SIGKILL)
        await parent.wait()
        await wait_for(_gone(pids), timeout_s=10, what="the orphaned workers to exit")
        sent = target.requests
        await asyncio.sleep(0.3)  # a surviving worker would keep sending meanwhile
        assert target.requests == sent


def _has_requests(target: ScriptedTarget) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return target.requests > 100

    return check


def _gone(pids: list[int]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not any(os.path.exists(f"/proc/{pid}") for pid in pids)  # noqa: ASYNC240

    return check


async def test_the_open_model_spreads_every_workers_sends_over_one_even_schedule() -> None:
    # 40 req/s over 4 connections in 2 workers: one send every 25 ms, not pairs 50 ms apart.
    async with ScriptedTarget() as target:
        plan = LoadPlan(
            parse_url(url(target.port)), connections=4, rate=40.0, duration_s=1.0, workers=2
        )
        pool = LoadPool(plan, LOCAL)
        try:
            await pool.start()
            async for _ in pool.seconds():
                pass
        finally:
            await pool.close()
    gaps_s = [b - a for a, b in zip(target.arrivals_s, target.arrivals_s[1:], strict=False)]
    assert len(target.arrivals_s) == 40
    assert min(gaps_s) > 0.0125  # half the even spacing: never two sends at once


_CLOSED_STDOUT = textwrap.dedent(
    """
    import asyncio, os, socket, sys
    from latlab.measure.load.plan import LoadPlan
    from latlab.measure.load.pool import LoadPool
    from latlab.measure.request import parse_url

    async def main():
        plan = LoadPlan(parse_url(sys.argv[1]), connections=4, requests=200, duration_s=None)
        pool = LoadPool(plan, (int(socket.AF_INET), "127.0.0.1"))
        total = 0
        try:
            await pool.start()
            async for second in pool.seconds():
                total += second.requests
        finally:
            await pool.close()
        codes = [worker.process.returncode for worker in pool._workers]
        os.write(2, f"{codes} {total}".encode())

    asyncio.run(main())
    """
)


async def test_workers_run_when_the_parent_has_no_stdout(tmp_path: Path) -> None:
    # uvloop aborts if a socket gets descriptor 1: a worker must never inherit a closed one.
    async with ScriptedTarget() as target:
        script = tmp_path / "parent.py"
        script.write_text(_CLOSED_STDOUT)
        shell = f'exec "{sys.executable}" "{script}" "{url(target.port)}" >&-'
        parent = await asyncio.create_subprocess_shell(shell, stderr=subprocess.PIPE)
        _, stderr = await parent.communicate()
    assert parent.returncode == 0, stderr.decode()
    assert stderr.decode().endswith("[0] 200")  # the worker did not abort
