"""The job manager: the one state machine every kind runs on, and each job's task.

The store holds the truth; the manager keeps tasks in line with it. Jobs found ``running``
at start-up are adopted (through the coordinator, so with several processes each job is run
by one) and resumed from their checkpoints, or marked failed if their kind cannot resume. On
shutdown their tasks are cancelled and they stay ``running`` for the next process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from latlab.coordination import JobKey
from latlab.jobs.driver import JobDriver
from latlab.jobs.executor import Executor
from latlab.jobs.ownership import Ownership
from latlab.jobs.quota import RunningCounts, RunningLimit
from latlab.jobs.runner import JobRunner, ResumePolicy, RunContext, owned_here
from latlab.jobs.state import Action, InvalidTransition, next_state
from latlab.jobs.supervise import retried, supervise, until_stored
from latlab.storage import JobRecord, JobState, StateConflict, StoreUnavailable
from latlab.storage.records import ProgressUpdate

log = logging.getLogger("latlab.jobs")
MAX_BATCH = 10_000
ADOPT_CHUNK = 500


class UnknownKind(ValueError):
    pass


class JobManager:
    """Creates, starts, pauses, resumes, stops and deletes jobs of every registered kind."""

    def __init__(
        self,
        ctx: RunContext,
        executor: Executor,
        runners: Sequence[JobRunner],
        *,
        adopts: bool = True,
    ) -> None:
        """``adopts=False`` for a worker: it runs what it is dispatched, and the control
        plane re-dispatches the jobs of an owner that died."""
        self._ctx = ctx
        self._adopts = adopts
        self._executor = executor
        self._runners = {runner.kind: runner for runner in runners}
        self._locks: weakref.WeakValueDictionary[JobKey, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._services: list[asyncio.Task[None]] = []
        self._closing = False
        self._first_adopted: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        # Jobs a user acted on while an adoption ran: its listing of them may be stale.
        self._touched: set[JobKey] | None = None
        self._adopting = asyncio.Lock()
        self._running = RunningCounts(ctx.store)
        self.ownership = Ownership(ctx, executor, self)
        self._driver = JobDriver(ctx, self._runners, self.lock, self.ownership)
        executor.bind(self._driver.drive)

    def kinds(self) -> list[str]:
        return list(self._runners)

    def runner(self, kind: str) -> JobRunner:
        try:
            return self._runners[kind]
        except KeyError:
            raise UnknownKind(f"no runner for job kind {kind!r}") from None

    def lock(self, key: JobKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def start(self) -> None:
        """Start every kind's services and, in the background, adopt the running jobs.

        The caller (the app's lifespan) returns at once, so the API answers while thousands
        of jobs are still being resumed; :meth:`adopted` waits for that first adoption.
        """
        for runner in self._runners.values():
            for service in runner.services(self._ctx):
                self._spawn(service.name, service.work)
        for name, work in self.ownership.services():
            self._spawn(name, work)
        if not self._adopts:
            self._first_adopted.set_result(0)
            return
        adoption = asyncio.create_task(self._first_adoption(), name="latlab-adoption")
        self._services.append(adoption)

    async def adopted(self) -> int:
        """Wait for the adoption that start() began; return how many jobs it resumed."""
        return await asyncio.shield(self._first_adopted)

    async def _first_adoption(self) -> None:
        # The store or Redis may be away at start-up: try again until it works, never give up.
        resumed = await retried("adoption at start-up", self.adopt, (Exception,))
        self._first_adopted.set_result(resumed)

    def _spawn(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.create_task(supervise(name, work), name=f"latlab-{name}")
        self._services.append(task)

    async def shutdown(self) -> None:
        # Services first: a lease loop adopting during shutdown would launch jobs nobody stops.
        self._closing = True
        self._first_adopted.cancel()  # no-op once done; wakes nobody else (adopted() shields)
        for task in self._services:
            task.cancel()
        await asyncio.gather(*self._services, return_exceptions=True)
        await self._executor.shutdown()
        await self.ownership.close()  # after the jobs: an ending job may still tell its owner
        # Each kind closes whatever another's close met: one's store write failing must not
        # leave another's processes running.
        for runner in self._runners.values():
            await self._unless_store_away(runner.close(self._ctx))
        await self._unless_store_away(self._ctx.writer.flush())

    @staticmethod
    async def _unless_store_away(closing: Awaitable[None]) -> None:
        try:
            await closing
        except StoreUnavailable as exc:  # nothing more can be done; checkpoints are redone
            log.warning("last checkpoints not written at shutdown: %s", exc)

    async def adopt(self) -> int:
        """Run the orphaned running jobs here; fail those whose kind cannot resume."""
        if self._closing or not self._adopts:
            return 0
        # One at a time: the touched set belongs to the adoption that lists the jobs.
        async with self._adopting:
            self._touched = set()
            try:
                return await self._adopt()
            finally:
                self._touched = None

    async def _adopt(self) -> int:
        records: dict[JobKey, JobRecord] = {}

        async def running() -> dict[JobKey, str]:
            for kind in self._runners:
                page = await self._ctx.store.list_jobs(kind, states={JobState.RUNNING})
                records.update({(kind, job.id): job for job in page.items if self._orphan(job)})
            return {key: str(job.progress.get("fleet") or "local") for key, job in records.items()}

        adopted = await self._ctx.coordinator.adopt(running)
        for key in adopted:
            policy = self._runners[key[0]].resume_policy(records[key])
            if policy is ResumePolicy.FAIL and not self._was_touched(key):
                await self._driver.finish(
                    records[key], JobState.FAILED, "interrupted", adopted=True
                )
        resumable = [
            key
            for key in adopted
            if self._runners[key[0]].resume_policy(records[key]) is ResumePolicy.RESUME
        ]
        # Listed as active at once, before the (possibly long) launch of every task.
        await self.ownership.announce([key for key in resumable if not self._was_touched(key)])
        resumed = 0
        for index, key in enumerate(resumable):
            if index % ADOPT_CHUNK == ADOPT_CHUNK - 1:
                await asyncio.sleep(0)  # let requests in between chunks of a large adoption
            if self._closing:
                break
            if not self._was_touched(key):  # else stopped, paused or deleted meanwhile
                self._submit([records[key]])
                resumed += 1
        if resumed:
            log.info("resumed %d running job(s)", resumed)
        return resumed

    async def create(
        self,
        kind: str,
        spec: Mapping[str, Any],
        *,
        start: bool = False,
        limit: RunningLimit | None = None,
    ) -> JobRecord:
        return (await self.create_many(kind, [spec], start=start, limit=limit))[0]

    async def create_many(
        self,
        kind: str,
        specs: Sequence[Mapping[str, Any]],
        *,
        start: bool = False,
        limit: RunningLimit | None = None,
    ) -> list[JobRecord]:
        """Create jobs in one transaction (all or nothing); started ones have started on return.

        With a ``limit``, starting them must keep ``kind`` within it, else
        :class:`~latlab.jobs.quota.QuotaExceeded` and nothing is created.
        """
        self.runner(kind)
        if len(specs) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} jobs in one call")
        state = JobState.RUNNING if start else JobState.CREATED
        async with self._quota(kind, len(specs) if start else 0, limit):
            jobs = await self._ctx.writer.create_jobs(kind, specs, state=state)
        for job in jobs:  # new, not orphans: an adoption listing them meanwhile leaves them be
            self.touch((job.kind, job.id))
        for job in jobs:
            self._ctx.events.state_changed(job)
        if start:
            await self.launch(jobs)
        return jobs

    def _quota(
        self, kind: str, asked: int, limit: RunningLimit | None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        if limit is None or asked == 0:
            return contextlib.nullcontext()
        return self._running.reserved(kind, asked, limit)

    async def act(
        self, kind: str, job_id: int, action: Action, *, limit: RunningLimit | None = None
    ) -> JobRecord:
        """Apply ``action``; raise :class:`JobNotFound` or :class:`InvalidTransition`, or
        :class:`~latlab.jobs.quota.QuotaExceeded` if starting it would pass ``limit``."""
        runner = self.runner(kind)
        key = (kind, job_id)
        started: list[asyncio.Future[None]] = []
        async with self.lock(key):
            self.touch(key)
            job = await self._ctx.store.get_job(kind, job_id)
            target = next_state(job.kind, job.id, job.state, action)
            if target is JobState.RUNNING:
                if job.state is not JobState.RUNNING:
                    async with self._quota(kind, 1, limit):
                        job = await self._move(job, target, action)
                    ran_on = job.progress.get("fleet")
                    job = await self._released(job)
                    started = self._submit([job], back_to=ran_on)
                elif self._may_run_here(job):
                    started = self._submit([job])  # a no-op when its task runs here already
            else:
                job = await self._halt_and_settle(runner, job, target, action)
        # Outside the lock: a job that fails before it starts ends under that same lock, and
        # Redis being slow must not hold the job.
        if started:
            await asyncio.gather(*started)
            await self.ownership.announce([key])
        elif target is not JobState.RUNNING:
            await self.ownership.tell_owner(key)
        return job

    async def _released(self, job: JobRecord) -> JobRecord:
        """A job started again is anyone's to claim: the process that ran it before (told
        to halt when it left ``running``) may be alive and still named by its checkpoint,
        and no worker takes a job a live owner holds. ``handed_from`` keeps that owner
        for a bot, whose heartbeat says where it stopped."""
        holder = job.progress.get("fleet")
        if holder is None or not self._ctx.coordinator.shared:
            return job
        released = {"fleet": None, "handed_from": holder}
        write = functools.partial(
            self._ctx.writer.write, [], [ProgressUpdate(job.kind, job.id, released)]
        )
        await until_stored(f"{job.kind} job {job.id} start", write)
        return dataclasses.replace(job, progress={**job.progress, **released})

    def _may_run_here(self, job: JobRecord) -> bool:
        """A running job is (re)launched here only if no other live process owns it."""
        return not self._ctx.coordinator.shared or owned_here(job, self._ctx)

    async def _halt_and_settle(
        self, runner: JobRunner, job: JobRecord, target: JobState, action: Action
    ) -> JobRecord:
        async with self._halted(job) as was_here:
            return await self._settle(runner, job, target, action, was_here)

    @contextlib.asynccontextmanager
    async def _halted(self, job: JobRecord) -> AsyncIterator[bool]:
        """Halt the job here for the body; if the store fails meanwhile, it is still running
        there, so it goes on running here. Yields whether it ran here."""
        was_here = self._executor.is_running(job.kind, job.id)
        try:
            await self.halt((job.kind, job.id))
            yield was_here
        except StoreUnavailable:
            if was_here:
                self._submit([job])
            raise

    async def _settle(
        self, runner: JobRunner, job: JobRecord, target: JobState, action: Action, was_here: bool
    ) -> JobRecord:
        if target is job.state:
            return job
        job = await self._move(job, target, action)
        if target is JobState.PAUSED:
            await runner.paused(job, self._ctx)
        if target is JobState.STOPPED:
            final = await runner.stopped(job, self._ctx, ran_here=was_here)
            if final:
                # The state has moved: the rest of the stop must land, outage or not.
                update = ProgressUpdate(job.kind, job.id, dict(final))
                write = functools.partial(self._ctx.writer.write, [], [update])
                await until_stored(f"{job.kind} job {job.id} stop", write)
                read = functools.partial(self._ctx.store.get_job, job.kind, job.id)
                job = await until_stored(f"{job.kind} job {job.id} stop", read)
        return job

    async def delete(self, kind: str, job_id: int) -> None:
        self.runner(kind)
        key = (kind, job_id)
        async with self.lock(key):
            self.touch(key)
            job = await self._ctx.store.get_job(kind, job_id)
            async with self._halted(job):
                await self.runner(kind).deleting(job, self._ctx)
                await self._ctx.store.delete_job(kind, job_id)
        self._ctx.events.deleted(kind, job_id)
        await self.ownership.tell_owner(key)

    def _orphan(self, job: JobRecord) -> bool:
        """Whether a running job may be adopted: it names an owner, or nobody claimed it for a
        whole lease (a process that started it claims it within milliseconds)."""
        if job.progress.get("fleet") is not None or not self._ctx.coordinator.shared:
            return True
        claim_window = timedelta(seconds=self._ctx.coordinator.lease_s)
        return job.updated_at < datetime.now(UTC) - claim_window

    def _was_touched(self, key: JobKey) -> bool:
        return self._touched is not None and key in self._touched

    def touch(self, key: JobKey) -> None:
        """A user or a peer acted on the job: an adoption running now must leave it alone."""
        if self._touched is not None:
            self._touched.add(key)

    async def active_ids(self, kind: str) -> list[int]:
        """Running jobs of ``kind``, newest first (shared through Redis when there is one)."""
        # Until the first adoption has announced them, the store is the complete view.
        shared = await self.ownership.active_ids(kind) if self._first_adopted.done() else None
        if shared is not None:
            return shared
        page = await self._ctx.store.list_jobs(kind, states={JobState.RUNNING})
        return sorted((job.id for job in page.items), reverse=True)

    def running_here(self) -> list[JobKey]:
        return self._executor.running()

    async def halt(self, key: JobKey) -> None:
        """Stop the job's work here (if any), its last checkpoint written."""
        await self._executor.cancel(*key)
        # The task's last checkpoint may still be queued: it must land before the state moves.
        await self._ctx.writer.flush()

    async def _move(self, job: JobRecord, target: JobState, action: Action) -> JobRecord:
        try:
            moved = await self._ctx.store.set_state(job.kind, job.id, target, expected={job.state})
        except StateConflict as conflict:
            raise InvalidTransition(job.kind, job.id, conflict.job.state, action) from conflict
        self._ctx.events.state_changed(moved)
        return moved

    def _submit(
        self, jobs: Collection[JobRecord], back_to: str | None = None
    ) -> list[asyncio.Future[None]]:
        """``back_to``: the process that ran the (one) job until its pause, when it starts
        again; a worker's processes may wait there for it."""
        started = []
        for job in jobs:
            if not self._executor.is_running(job.kind, job.id):
                self._driver.preload(job)
            where = self._runners[job.kind].location(job)
            started.append(self._executor.submit(job.kind, job.id, where, back_to))
            if not self._executor.is_running(job.kind, job.id):
                self._driver.forget((job.kind, job.id))  # dispatched: it runs elsewhere
        return started

    async def run_dispatched(self, key: JobKey) -> None:
        """Run a job this worker has just claimed; return once it has started.

        Not preloaded: its run reads it afresh, so a stop since the claim is seen.
        """
        await self._executor.submit(*key)
        await self.ownership.announce([key])

    async def launch(self, jobs: Collection[JobRecord]) -> None:
        """Run ``jobs`` (running in the store, claimed by this process); return once started."""
        await asyncio.gather(*self._submit(jobs))
        await self.ownership.announce([(job.kind, job.id) for job in jobs])
