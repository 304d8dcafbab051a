"""The job manager: state transitions, task lifecycle, reconciliation at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from latlab.jobs.executor import Executor
from latlab.jobs.runner import JobRunner, RunContext
from latlab.jobs.state import Action, InvalidTransition, next_state
from latlab.storage import JobNotFound, JobRecord, JobState, StateConflict

log = logging.getLogger("latlab.jobs")


class JobManager:
    """Owns every job's task. The store holds the truth; this keeps tasks in line with it.

    Jobs that are ``running`` in the store when the manager starts are resumed from their
    checkpoints; on shutdown their tasks are cancelled and they stay ``running``, so the next
    start resumes them again.
    """

    def __init__(self, ctx: RunContext, executor: Executor, runners: Iterable[JobRunner]) -> None:
        self._ctx = ctx
        self._executor = executor
        self._runners = {runner.kind: runner for runner in runners}
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, job_id: int) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        return lock

    async def start(self) -> int:
        """Resume the jobs that were running when the last process ended; return how many."""
        resumed = 0
        for kind in self._runners:
            page = await self._ctx.store.list_jobs(kind, states={JobState.RUNNING})
            for job in page.items:
                self._launch(job)
                resumed += 1
        if resumed:
            log.info("resumed %d running job(s)", resumed)
        return resumed

    async def shutdown(self) -> None:
        await self._executor.shutdown()
        await self._ctx.writer.flush()

    async def create(self, kind: str, spec: Mapping[str, Any]) -> JobRecord:
        if kind not in self._runners:
            raise ValueError(f"no runner for job kind {kind!r}")
        return await self._ctx.store.create_job(kind, spec)

    async def act(self, kind: str, job_id: int, action: Action) -> JobRecord:
        """Apply ``action``; raise :class:`JobNotFound` or :class:`InvalidTransition`."""
        async with self._lock(job_id):
            job = await self._ctx.store.get_job(kind, job_id)
            target = next_state(job.kind, job.id, job.state, action)
            if target is not JobState.RUNNING:
                await self._halt(job_id)
            if target is not job.state:
                job = await self._move(job, target, action)
            if target is JobState.RUNNING:
                self._launch(job)
            return job

    async def delete(self, kind: str, job_id: int) -> None:
        async with self._lock(job_id):
            await self._ctx.store.get_job(kind, job_id)
            await self._halt(job_id)
            await self._ctx.store.delete_job(kind, job_id)

    def is_running(self, job_id: int) -> bool:
        return self._executor.is_running(job_id)

    async def _halt(self, job_id: int) -> None:
        await self._executor.cancel(job_id)
        # The task's last checkpoint may still be queued: it must land before the state moves.
        await self._ctx.writer.flush()

    async def _move(self, job: JobRecord, target: JobState, action: Action) -> JobRecord:
        try:
            return await self._ctx.store.set_state(job.kind, job.id, target, expected={job.state})
        except StateConflict as conflict:
            raise InvalidTransition(job.kind, job.id, conflict.job.state, action) from conflict

    def _launch(self, job: JobRecord) -> None:
        self._executor.submit(job.id, lambda: self._drive(job))

    async def _drive(self, job: JobRecord) -> None:
        runner = self._runners[job.kind]
        try:
            await runner.run(job, self._ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s job %s failed", job.kind, job.id)
            await self._finish(job, JobState.FAILED, f"{type(exc).__name__}: {exc}")
            return
        await self._finish(job, JobState.COMPLETED, None)

    async def _finish(self, job: JobRecord, state: JobState, error: str | None) -> None:
        async with self._lock(job.id):
            # A pause, stop or delete that got here first wins; it already moved the state.
            with contextlib.suppress(StateConflict, JobNotFound):
                await self._ctx.store.set_state(
                    job.kind, job.id, state, expected={JobState.RUNNING}, error=error
                )
