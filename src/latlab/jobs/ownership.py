"""Keeping this process's claim on its jobs: the lease, halts from elsewhere, adoption.

Redis being away must never stop a job by itself nor let two processes run one: while the
lease renews, jobs run; once it is about to expire unrenewed, every job here is halted (they
stay ``running`` in the store) and this process takes a new identity, so whoever adopts the
old owner's jobs first, this process included, runs them from their checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING

from latlab.coordination import JobKey
from latlab.jobs.executor import Executor
from latlab.jobs.runner import RunContext
from latlab.jobs.supervise import Outage
from latlab.storage import JobNotFound, JobState

if TYPE_CHECKING:
    from latlab.jobs.manager import JobManager

log = logging.getLogger("latlab.jobs")
GUARD_EVERY_S = 0.1


class Ownership:
    def __init__(self, ctx: RunContext, executor: Executor, manager: JobManager) -> None:
        self._ctx = ctx
        self._coordinator = ctx.coordinator
        self._executor = executor
        self._manager = manager
        self._redis_outage = Outage("coordination", log)

    def services(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        return [
            ("lease", self._lease_loop),
            ("lease guard", self._guard_loop),
            ("coordination listener", self._coordinator.listen),
            ("halts", self._halt_loop),
        ]

    async def announce(self, keys: Collection[JobKey]) -> None:
        """These jobs run here now; a failure only delays the shared view until a resync."""
        if keys:
            await self._best_effort(self._coordinator.joined(keys))

    async def tell_owner(self, key: JobKey) -> None:
        """The job left ``running``: its owner, wherever it is, halts it."""
        await self._best_effort(self._coordinator.left(key))

    async def active_ids(self, kind: str) -> list[int] | None:
        try:
            return await self._coordinator.active_ids(kind)
        except Exception as exc:  # the store is the fallback view while Redis is away
            self._redis_outage.failed(exc)
            return None

    async def _best_effort(self, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception as exc:  # the store already holds the truth; peers resync from it
            self._redis_outage.failed(exc)
        else:
            self._redis_outage.recovered()

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self._coordinator.lease_s / 3)
            await self._coordinator.keep_alive()
            if await self._coordinator.orphans_exist():
                await self._manager.adopt()

    async def _guard_loop(self) -> None:
        while True:
            await asyncio.sleep(GUARD_EVERY_S)
            if not self._coordinator.lease_fresh() and self._executor.running():
                await self._give_up_jobs()

    async def _give_up_jobs(self) -> None:
        keys = self._executor.running()
        log.warning("lease not renewed in time: halting %d job(s) here", len(keys))
        for key in keys:
            await self._executor.cancel(*key)
        self._coordinator.renew_identity()

    async def _halt_loop(self) -> None:
        while (key := await self._coordinator.next_halt()) is not None:
            if key[0]:
                await self._halt_unless_running(key)
            else:
                await self._resync()

    async def _resync(self) -> None:
        """Halts may have been missed while disconnected: compare with the store, once."""
        here = self._executor.running()
        running: set[JobKey] = set()
        for kind in {kind for kind, _ in here}:
            page = await self._ctx.store.list_jobs(kind, states={JobState.RUNNING})
            running.update((kind, job.id) for job in page.items)
        for key in here:
            if key not in running:
                await self._halt_unless_running(key)
        await self.announce(self._executor.running())

    async def _halt_unless_running(self, key: JobKey) -> None:
        """Halt the job here unless the store (read under the job's lock) has it running."""
        if key not in self._executor.running():
            return
        async with self._manager.lock(key):
            try:
                running = (await self._ctx.store.get_job(*key)).state is JobState.RUNNING
            except JobNotFound:
                running = False
            if not running:
                await self._manager.halt(key)
