"""Processes kept warm for the resume of the load runs (or shards) paused here.

Any halt closes a run's pool: a pause, a stop, a delete, a shutdown, a lost lease. Only a
pause is worth processes started ahead (:class:`WarmProcesses`: a resume then skips the ~80 ms
a new interpreter takes), and where a pause is known differs. The process that handled the
user's pause hears it from the manager after the halt (:meth:`ResumeWarmth.paused`); a worker
halted from elsewhere (its shard paused through the API) is halted only once the store says
the job left ``running``, so it reads the state again after the pool closed.
"""

from __future__ import annotations

import asyncio
import contextlib

from latlab.coordination import JobKey
from latlab.measure.load.warm import WarmProcesses
from latlab.storage import JobNotFound, JobState, Store, StoreUnavailable


class ResumeWarmth:
    def __init__(self, processes: WarmProcesses | None = None) -> None:
        self.processes = processes or WarmProcesses()
        self._halted: dict[JobKey, int] = {}  # pools a halt closed here: how many processes
        self._checks: set[asyncio.Task[None]] = set()

    def halted(self, key: JobKey, workers: int, store: Store) -> None:
        """The job's pool of ``workers`` processes was closed by a halt (of unknown cause)."""
        self._halted[key] = workers
        check = asyncio.create_task(self._warm_if_paused(key, store), name="latlab-warm-check")
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)

    def paused(self, key: JobKey) -> None:
        """A user's pause of the job, handled here after its halt."""
        if workers := self._halted.pop(key, 0):
            self.processes.want(workers)

    def forget(self, key: JobKey) -> None:
        """The job runs again, or was stopped or deleted: no resume to warm for."""
        self._halted.pop(key, None)

    async def _warm_if_paused(self, key: JobKey, store: Store) -> None:
        try:
            state = (await store.get_job(*key)).state
        except JobNotFound:
            state = None
        except StoreUnavailable:  # a resume then starts its processes as a new run does
            return
        if state is JobState.PAUSED:
            self.paused(key)
        elif state is not JobState.RUNNING:  # still running: a pause handled here may follow
            self.forget(key)

    async def settled(self) -> None:
        """Until the state checks under way are done: what the halts so far warm is known."""
        await asyncio.gather(*self._checks)

    async def close(self) -> None:
        for check in self._checks:
            check.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._checks, return_exceptions=True)
        await self.processes.close()
