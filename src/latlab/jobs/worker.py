"""A worker's side of a dispatched job: claim it in the store, run it here, report in.

The claim is a compare-and-set on the owner the job's checkpoint names (the fence every
write of the job carries): it succeeds only if that owner is this worker, nobody, or an
owner whose lease is gone, and only for one of several workers racing for it. From then on
every checkpoint of this attempt is fenced by this worker's owner id, so once the job was
handed on (this worker frozen past its lease, say) nothing this worker writes lands.
"""

from __future__ import annotations

import asyncio
import logging

from latlab.cancellation import deliver_lost_cancel
from latlab.coordination import JobKey
from latlab.coordination.fleet import Fleet, WorkerInfo
from latlab.coordination.streams import lane_of
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.manager import JobManager
from latlab.jobs.runner import RunContext
from latlab.storage import JobNotFound, JobState
from latlab.storage.records import ProgressUpdate

log = logging.getLogger("latlab.worker")


class Worker:
    def __init__(
        self,
        ctx: RunContext,
        manager: JobManager,
        executor: InProcessExecutor,
        *,
        location: str,
        capacity: int,
    ) -> None:
        self._ctx = ctx
        self._manager = manager
        self._executor = executor
        self.location = location
        self.capacity = capacity

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            id=self._ctx.coordinator.owner_id,
            location=self.location,
            capacity=self.capacity,
            jobs=sorted(self._executor.running()),
        )

    async def heartbeat(self, fleet: Fleet) -> None:
        """Renew this worker's entry in the fleet until cancelled (supervised)."""
        while True:
            deliver_lost_cancel()  # a heartbeat's Redis call may have swallowed a stop
            await fleet.heartbeat(self.info())
            await asyncio.sleep(self._ctx.coordinator.lease_s / 3)

    async def run_job(self, kind: str, job_id: int) -> None:
        """The dispatched task: run the job here if this worker wins it.

        A job of a heavy kind holds its receiver slot until it ends (that is how capacity
        bounds them); a light one returns once started.
        """
        if kind not in self._manager.kinds():
            log.warning("dispatched a %s job (%s), a kind this worker does not run", kind, job_id)
            return
        key = (kind, job_id)
        if not await self._claim(key):
            return
        deliver_lost_cancel()  # stopped while claiming: the claim lapses with this lease
        await self._manager.run_dispatched(key)
        if lane_of(kind) == "heavy":
            await self._executor.until_done(kind, job_id)

    async def _claim(self, key: JobKey) -> bool:
        me = self._ctx.coordinator.owner_id
        async with self._manager.lock(key):
            if self._executor.is_running(*key):
                return False
            try:
                job = await self._ctx.store.get_job(*key)
            except JobNotFound:
                return False
            holder = job.progress.get("fleet")
            if job.state is not JobState.RUNNING:
                return False
            if holder not in (None, me) and await self._ctx.coordinator.alive(str(holder)):
                return False
            deliver_lost_cancel()  # a stop swallowed by that Redis call: claim nothing
            # Fenced by the owner read above: of two workers racing, one moves it.
            # ``handed_from``: whose heartbeat tells where a bot stopped printing.
            claimed = {"fleet": me, "handed_from": holder}
            claim = ProgressUpdate(*key, claimed, owner=str(holder or me))
            lost = await self._ctx.store.checkpoint([], [claim])
        if key in lost:
            return False
        log.info("%s job %s claimed (was %s)", *key, holder or "unclaimed")
        return True
