"""Running one job: load it, claim it, run its kind's runner, end it; across store outages.

This is what an executor runs for ``(kind, job_id)``, here or, later, on a remote worker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping

from latlab.cancellation import deliver_lost_cancel
from latlab.coordination import JobKey
from latlab.jobs.ownership import Ownership
from latlab.jobs.runner import JobRunner, RunContext, Started, owned_here
from latlab.jobs.supervise import Backoff, Outage, retried, until_stored
from latlab.storage import (
    FencedOut,
    JobNotFound,
    JobRecord,
    JobState,
    StateConflict,
    StoreUnavailable,
)
from latlab.storage.records import ProgressUpdate

log = logging.getLogger("latlab.jobs")


class JobFailed(Exception):
    """A job that cannot go on, for a reason its user is told as it is (``target not
    allowed: …``): stored as its message alone. Any other exception is a crash, stored with
    its class name."""


class JobDriver:
    def __init__(
        self,
        ctx: RunContext,
        runners: Mapping[str, JobRunner],
        lock: Callable[[JobKey], asyncio.Lock],
        ownership: Ownership,
    ) -> None:
        self._ctx = ctx
        self._runners = runners
        self._lock = lock
        self._ownership = ownership
        self._records: dict[JobKey, JobRecord] = {}  # loaded already, for the job's next run

    def preload(self, job: JobRecord) -> None:
        """The record the job's next run starts from, instead of reading it again."""
        self._records[(job.kind, job.id)] = job

    def forget(self, key: JobKey) -> None:
        self._records.pop(key, None)

    async def drive(self, kind: str, job_id: int, started: Started) -> None:
        """One job's task: load it, run it, and run it again after a store outage."""
        job = self._records.pop((kind, job_id), None)
        backoff, outage = Backoff(), Outage(f"{kind} job {job_id}")
        while True:
            try:
                job = job or await self._ctx.store.get_job(kind, job_id)
                if job.state is JobState.RUNNING:
                    await self._run_once(job, started)
                return
            except StoreUnavailable as exc:
                outage.failed(exc)
                await asyncio.sleep(backoff.next_s())
                job = None  # reload: it may have been stopped meanwhile
            except JobNotFound:
                return

    async def _run_once(self, job: JobRecord, started: Started) -> None:
        runner = self._runners[job.kind]
        if runner.needs_claim and self._ctx.coordinator.shared and not await self._claim(job):
            log.info("%s job %s was claimed by another process: not run here", job.kind, job.id)
            return  # alone on the store, nobody else could take it over
        try:
            await runner.run(job, self._ctx, started)
        except StoreUnavailable:
            raise
        except FencedOut:
            # Handed on while this process was frozen or cut off: the new owner ends it.
            log.warning(
                "%s job %s: checkpoint refused, held elsewhere now (or deleted): halted here",
                job.kind,
                job.id,
            )
            return
        except JobFailed as exc:
            log.warning("%s job %s failed: %s", job.kind, job.id, exc)
            await self.finish(job, JobState.FAILED, str(exc))
            return
        except Exception as exc:
            log.exception("%s job %s failed", job.kind, job.id)
            await self.finish(job, JobState.FAILED, f"{type(exc).__name__}: {exc}")
            return
        await self.finish(job, JobState.COMPLETED, None)

    async def _still_mine(self, job: JobRecord) -> bool:
        read = functools.partial(self._ctx.store.get_job, job.kind, job.id)
        return owned_here(await until_stored(f"{job.kind} job {job.id} end", read), self._ctx)

    async def _claim(self, job: JobRecord) -> bool:
        """Name this process the job's owner in its checkpoint (what adoption reads), unless
        a live process holds it; a compare-and-set on the owner ``job`` was read with
        (nobody, or one that died), so a worker that claims it meanwhile keeps it."""
        me, holder = self._ctx.coordinator.owner_id, job.progress.get("fleet")
        if holder == me:
            return True
        if holder is not None and await self._holder_alive(job, str(holder)):
            return False  # a live process (a worker that took it meanwhile) runs it
        claim = ProgressUpdate(job.kind, job.id, {"fleet": me}, owner=str(holder or me))
        lost = await self._ctx.store.checkpoint([], [claim])  # says itself whether it landed
        return (job.kind, job.id) not in lost

    async def _holder_alive(self, job: JobRecord, holder: str) -> bool:
        """Asked of Redis until it answers: a job adopted here is nobody else's to adopt
        now, so giving up on it would leave it running with nobody running it."""
        ask = functools.partial(self._ctx.coordinator.alive, holder)
        alive = await retried(f"{job.kind} job {job.id} owner check", ask, (Exception,))
        deliver_lost_cancel()  # a stop that Redis call swallowed (gh-86296)
        return alive

    async def finish(
        self, job: JobRecord, state: JobState, error: str | None, *, adopted: bool = False
    ) -> None:
        """End a running job, unless a user or another owner moved it first.

        ``adopted``: this process has just adopted it, so its checkpoint still names the
        owner it was taken from.
        """
        key = (job.kind, job.id)
        move = functools.partial(
            self._ctx.store.set_state,
            *key,
            state,
            expected={JobState.RUNNING},
            error=error,
        )
        async with self._lock(key):
            # A pause, stop or delete that got here first wins; it already moved the state.
            # So does another process that took the job over while this one was cut off.
            try:
                if not adopted and self._ctx.coordinator.shared and not await self._still_mine(job):
                    return
                ended = await until_stored(f"{job.kind} job {job.id} end", move)
            except (StateConflict, JobNotFound):
                return
        self._ctx.events.state_changed(ended)
        await self._ownership.tell_owner(key)
