"""Ownership loops end when cancelled, even if a Redis call swallowed the cancel."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from latlab.jobs.executor import Executor
from latlab.jobs.ownership import Jobs, Ownership
from latlab.jobs.runner import RunContext
from swallowed import ends_when_cancelled, swallow_the_cancel


class SwallowingCoordinator:
    """Its first renewal swallows the cancel of its task."""

    lease_s = 0.03

    def __init__(self) -> None:
        self.renewals = 0
        self.renewing = asyncio.Event()

    async def keep_alive(self) -> None:
        self.renewals += 1
        if self.renewals == 1:
            await swallow_the_cancel(self.renewing)

    async def orphans_exist(self) -> bool:
        return False

    async def listen(self) -> None:  # Ownership.services() names it; not run here
        raise AssertionError("not listened to in this test")


async def test_the_lease_loop_ends_although_a_renewal_swallowed_the_cancel() -> None:
    coordinator = SwallowingCoordinator()
    context = cast(RunContext, SimpleNamespace(coordinator=coordinator))
    ownership = Ownership(context, cast(Executor, None), cast(Jobs, None))
    lease_loop = dict(ownership.services())["lease"]

    async def renew() -> None:
        await lease_loop()

    await ends_when_cancelled(asyncio.create_task(renew()), coordinator.renewing)
    assert coordinator.renewals == 1


class SwallowingHalts:
    """Its first announcement swallows the cancel of its task, then halts job 1."""

    lease_s = 3.0

    def __init__(self) -> None:
        self.waits = 0
        self.waiting = asyncio.Event()

    async def next_halt(self) -> tuple[str, int] | None:
        self.waits += 1
        if self.waits == 1:
            await swallow_the_cancel(self.waiting)
            return ("probe", 1)
        await asyncio.Event().wait()  # nothing more is ever announced
        return None

    async def listen(self) -> None:  # Ownership.services() names it; not run here
        raise AssertionError("not listened to in this test")


class NothingRunsHere:
    def is_running(self, kind: str, job_id: int) -> bool:
        return False

    def touch(self, key: tuple[str, int]) -> None:
        return None


async def test_the_halt_loop_ends_although_handling_a_halt_swallowed_the_cancel() -> None:
    coordinator, nothing = SwallowingHalts(), NothingRunsHere()
    context = cast(RunContext, SimpleNamespace(coordinator=coordinator))
    ownership = Ownership(context, cast(Executor, nothing), cast(Jobs, nothing))
    halt_loop = dict(ownership.services())["halts"]

    async def listen() -> None:
        await halt_loop()

    await ends_when_cancelled(asyncio.create_task(listen()), coordinator.waiting)
    assert coordinator.waits == 1
