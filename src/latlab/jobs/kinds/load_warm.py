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
from time import monotonic

from latlab.coordination import JobKey
from latlab.measure.load.warm import WarmProcesses
from latlab.storage import JobNotFound, JobState, Store, StoreUnavailable

# A pause handled here reaches ``paused`` within moments of its halt; an older halt's entry is
# stale (its lease was lost, the job was paused elsewhere meanwhile) and goes.
HALT_KEPT_S = 60.0


class ResumeWarmth:
    def __init__(self, processes: WarmProcesses | None = None) -> None:
        self.processes = processes or WarmProcesses()
        # Pools a halt closed here: how many processes each had, and when.
        self._halted: dict[JobKey, tuple[int, float]] = {}
        self._checks: set[asyncio.Task[None]] = set()

    def halted(self, key: JobKey, workers: int, store: Store) -> None:
        """The job's pool of ``workers`` processes was closed by a halt (of unknown cause)."""
        now_s = monotonic()
        for stale in [k for k, (_, at_s) in self._halted.items() if at_s < now_s - HALT_KEPT_S]:
            del self._halted[stale]
        self._halted[key] = (workers, now_s)
        check = asyncio.create_task(self._warm_if_paused(key, store), name="latlab-warm-check")
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)

    def paused(self, key: JobKey) -> None:
        """A user's pause of the job, handled here after its halt."""
        workers, at_s = self._halted.pop(key, (0, 0.0))
        if workers and at_s >= monotonic() - HALT_KEPT_S:
            self.processes.want(workers)

    @property
    def pending(self) -> int:
        """Halts whose cause is not known yet."""
        return len(self._halted)

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
        await asyncio.gather(*self._checks, return_exceptions=True)
        await self.processes.close()
