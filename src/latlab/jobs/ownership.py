"""Keeping this process's claim on its jobs: the lease, halts from elsewhere, adoption.

Redis being away must never stop a job by itself nor let two processes run one: while the
lease renews, jobs run; once it is about to expire unrenewed, every job here is halted (they
stay ``running`` in the store) and this process takes a new identity, so whoever adopts the
old owner's jobs first, this process included, runs them from their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from latlab.cancellation import deliver_lost_cancel
from latlab.coordination import JobKey
from latlab.jobs.executor import Executor
from latlab.jobs.runner import RunContext
from latlab.jobs.supervise import Backoff, Outage
from latlab.storage import JobNotFound, JobState

log = logging.getLogger("latlab.jobs")
GUARD_EVERY_S = 0.1
RETELL_ATTEMPTS = 30  # about a minute and a half of Redis outage at the longest backoff


class Jobs(Protocol):
    """What ownership needs of the job manager."""

    def lock(self, key: JobKey) -> asyncio.Lock: ...

    async def halt(self, key: JobKey) -> None: ...

    def touch(self, key: JobKey) -> None: ...

    async def adopt(self) -> int: ...


class Ownership:
    def __init__(self, ctx: RunContext, executor: Executor, manager: Jobs) -> None:
        self._ctx = ctx
        self._coordinator = ctx.coordinator
        self._executor = executor
        self._manager = manager
        self._redis_outage = Outage("coordination", log)
        # Set when the lease could not be renewed: afterwards adopt from the store whatever
        # the coordinator remembers (a restarted Redis forgets every owner it knew).
        self._adopt_after_recovery = False
        self._retries: set[asyncio.Task[None]] = set()
        self._closed = False
        self._resync_pending = False  # a halt could not be handled: compare with the store

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
        """The job left ``running``: its owner, wherever it is, halts it.

        Call it outside the job's lock. If Redis does not answer, it is retried in the
        background, so the answer waits for one attempt at most.
        """
        if await self._best_effort(self._coordinator.left(key)) or self._closed:
            return
        retry = asyncio.create_task(self._tell_until_told(key), name="latlab-tell-owner")
        self._retries.add(retry)
        retry.add_done_callback(self._retries.discard)

    async def _tell_until_told(self, key: JobKey) -> None:
        backoff = Backoff(max_s=self._coordinator.lease_s)
        for _ in range(RETELL_ATTEMPTS):
            await asyncio.sleep(backoff.next_s())
            if await self._best_effort(self._coordinator.left(key)):
                return

    async def close(self) -> None:
        self._closed = True
        for retry in self._retries:
            retry.cancel()
        await asyncio.gather(*self._retries, return_exceptions=True)

    async def active_ids(self, kind: str) -> list[int] | None:
        try:
            return await self._coordinator.active_ids(kind)
        except Exception as exc:  # the store is the fallback view while Redis is away
            self._redis_outage.failed(exc)
            return None

    async def _best_effort(self, call: Awaitable[None]) -> bool:
        try:
            await call
        except Exception as exc:  # the store already holds the truth; peers resync from it
            self._redis_outage.failed(exc)
            return False
        self._redis_outage.recovered()
        return True

    async def _lease_loop(self) -> None:
        while True:
            deliver_lost_cancel()  # the last renewal's Redis call may have swallowed a stop
            await asyncio.sleep(self._coordinator.lease_s / 3)
            await self._renew()
            if self._adopt_after_recovery or await self._coordinator.orphans_exist():
                await self._manager.adopt()
                self._adopt_after_recovery = False  # only once it has worked

    async def _renew(self) -> None:
        try:
            await self._coordinator.keep_alive()
        except Exception:
            self._adopt_after_recovery = True
            raise

    async def _guard_loop(self) -> None:
        while True:
            deliver_lost_cancel()  # giving jobs up renews the lease through Redis
            await asyncio.sleep(GUARD_EVERY_S)
            if not self._coordinator.lease_fresh() and self._executor.running():
                await self._give_up_jobs()

    async def _give_up_jobs(self) -> None:
        keys = self._executor.running()
        log.warning("lease not renewed in time: halting %d job(s) here", len(keys))
        await self._executor.cancel_many(keys)  # all at once: the margin is a third of a lease
        self._coordinator.renew_identity()
        self._adopt_after_recovery = True
        # Register the new identity at once if Redis answers, so jobs claimed under it count.
        with contextlib.suppress(Exception):
            await self._coordinator.keep_alive()

    async def _halt_loop(self) -> None:
        if self._resync_pending:  # the last run failed while handling an announcement
            await self._resync()
        while True:
            deliver_lost_cancel()  # handling the last one called Redis, which may swallow it
            if (key := await self._coordinator.next_halt()) is None:
                return
            self._resync_pending = True
            if key[0]:
                await self._halt_unless_running(key)
            else:
                await self._resync()
            self._resync_pending = False

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
        self._manager.touch(key)  # an adoption under way must not launch it from its listing
        if not self._executor.is_running(*key):
            return
        async with self._manager.lock(key):
            try:
                running = (await self._ctx.store.get_job(*key)).state is JobState.RUNNING
            except JobNotFound:
                running = False
            if not running:
                await self._manager.halt(key)
