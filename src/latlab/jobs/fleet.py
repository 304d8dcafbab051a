"""The control plane's executor: jobs go to workers while any is up, else run here.

Without Redis, or with Redis and no live worker, everything runs in this process as it
always did. With a live worker a started job is dispatched; the worker that takes it claims
it in the store, so the same job dispatched twice still runs once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from latlab.cancellation import deliver_lost_cancel
from latlab.coordination import JobKey
from latlab.coordination.fleet import Fleet, WorkerInfo
from latlab.exporters.prometheus_fleet import WorkerSample
from latlab.jobs.executor import Driver, InProcessExecutor

log = logging.getLogger("latlab.jobs")
Dispatch = Callable[[str, int, str], Awaitable[None]]
ANY_LOCATION = "any"


class FleetWatch:
    """This process's view of the live workers, refreshed every ``every_s``."""

    def __init__(self, fleet: Fleet, every_s: float) -> None:
        self._fleet = fleet
        self._every_s = every_s
        self.workers: list[WorkerInfo] = []

    def has_workers(self) -> bool:
        return bool(self.workers)

    def samples(self) -> list[WorkerSample]:
        """The workers as ``/metrics`` shows them."""
        now = datetime.now(UTC)
        return [
            WorkerSample(
                w.id, w.location, w.capacity, len(w.jobs), (now - w.last_heartbeat).total_seconds()
            )
            for w in self.workers
        ]

    async def refresh(self) -> list[WorkerInfo]:
        self.workers = await self._fleet.live()
        return self.workers

    async def watch(self) -> None:
        """Refresh until cancelled (supervised: a Redis failure restarts it)."""
        while True:
            deliver_lost_cancel()  # the last refresh's Redis call may have swallowed a stop
            await self.refresh()
            await asyncio.sleep(self._every_s)


class FleetExecutor:
    def __init__(
        self, local: InProcessExecutor, dispatch: Dispatch, has_workers: Callable[[], bool]
    ) -> None:
        self._local = local
        self._dispatch = dispatch
        self._has_workers = has_workers
        self._sending: set[asyncio.Task[None]] = set()

    def bind(self, drive: Driver) -> None:
        self._local.bind(drive)

    def submit(self, kind: str, job_id: int, location: str | None = None) -> asyncio.Future[None]:
        """A job pinned to a location always goes to the workers, and waits for one there."""
        pinned = location not in (None, ANY_LOCATION)
        if self._local.is_running(kind, job_id) or not (pinned or self._has_workers()):
            return self._local.submit(kind, job_id)
        where = location if location is not None else ANY_LOCATION
        sending = asyncio.create_task(
            self._send(kind, job_id, where), name=f"latlab-dispatch-{kind}"
        )
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)
        return sending

    async def _send(self, kind: str, job_id: int, location: str) -> None:
        try:
            await self._dispatch(kind, job_id, location)
        except Exception as exc:  # Redis away: run it here; a worker will not take it over
            log.warning("could not dispatch %s job %s, running it here: %s", kind, job_id, exc)
            await self._local.submit(kind, job_id)

    def running(self) -> list[JobKey]:
        return self._local.running()

    def is_running(self, kind: str, job_id: int) -> bool:
        return self._local.is_running(kind, job_id)

    async def cancel(self, kind: str, job_id: int) -> None:
        await self._local.cancel(kind, job_id)

    async def cancel_many(self, keys: list[JobKey]) -> None:
        await self._local.cancel_many(keys)

    async def shutdown(self) -> None:
        for sending in list(self._sending):
            sending.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self._local.shutdown()
