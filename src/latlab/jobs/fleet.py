"""The control plane's executor: jobs go to workers while any is up, else run here.

Without Redis, or with Redis and no live worker, everything runs in this process as it
always did. With a live worker a started job is dispatched; the worker that takes it claims
it in the store, so the same job dispatched twice still runs once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from latlab.cancellation import deliver_lost_cancel
from latlab.coordination import JobKey
from latlab.coordination.fleet import ANY_LOCATION, Fleet, WorkerInfo
from latlab.coordination.streams import lane_of, worker_address
from latlab.exporters.prometheus_fleet import WorkerSample
from latlab.jobs.executor import Driver, InProcessExecutor
from latlab.jobs.runner import RUN_HERE
from latlab.storage import JobNotFound, JobState, Store, StoreUnavailable

log = logging.getLogger("latlab.jobs")
Dispatch = Callable[[str, int, str], Awaitable[None]]
# Whether a job is still running with no owner named: nobody took its dispatch (yet).
Unclaimed = Callable[[str, int], Awaitable[bool]]
HasRoom = Callable[[str, str], bool]  # (location, kind): could a worker there start it now
HasRoomOn = Callable[[str, str, JobKey], bool]  # (worker, location, job): could it start it
CLAIM_WITHIN_S = 5.0  # a dispatched job nobody claimed by then is sent again, or run here
# A job sent back to the worker that ran it, and not claimed by then, goes to any worker.
PREFERRED_WITHIN_S = 1.0
CHECK_CLAIMS_EVERY_S = 1.0
MAX_QUEUED_S = 60.0  # a job queued behind busy workers this long is sent again anyway


def has_room(workers: list[WorkerInfo], location: str, kind: str) -> bool:
    """Whether one of ``workers`` there could start a ``kind`` job now: bots are light (no
    bound); an experiment or a load shard needs a free slot of its ``--capacity``."""
    there = [w for w in workers if location in (ANY_LOCATION, w.location)]
    if lane_of(kind) == "light":
        return bool(there)
    return any(sum(lane_of(k) == "heavy" for k, _ in w.jobs) < w.capacity for w in there)


def has_room_on(workers: list[WorkerInfo], worker_id: str, location: str, key: JobKey) -> bool:
    """Whether the live worker ``worker_id`` reads ``location`` and could start the job now.
    Its entry is a heartbeat old: a slot the job itself still holds there counts as free."""
    there = [
        replace(w, jobs=[job for job in w.jobs if tuple(job) != key])
        for w in workers
        if w.id == worker_id
    ]
    return has_room(there, location, key[0])


class FleetWatch:
    """This process's view of the live workers, refreshed every ``every_s``."""

    def __init__(self, fleet: Fleet, every_s: float) -> None:
        self._fleet = fleet
        self._every_s = every_s
        self.workers: list[WorkerInfo] = []

    def has_workers_at(self, location: str) -> bool:
        """Whether a live worker reads ``location``'s jobs (every worker reads ``any``)."""
        return any(location in (ANY_LOCATION, w.location) for w in self.workers)

    def has_room_at(self, location: str, kind: str) -> bool:
        return has_room(self.workers, location, kind)

    def has_room_on(self, worker_id: str, location: str, key: JobKey) -> bool:
        return has_room_on(self.workers, worker_id, location, key)

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
    """Sends started jobs to the workers and sees that someone takes each: a dispatch lost
    on its way (a worker killed between reading it and claiming the job, the store away at
    the claim, the last worker gone a moment before) is sent again after ``claim_within_s``,
    or run here once no worker that could take it is up."""

    def __init__(
        self,
        local: InProcessExecutor,
        dispatch: Dispatch,
        has_workers_at: Callable[[str], bool],
        unclaimed: Unclaimed,
        claim_within_s: float = CLAIM_WITHIN_S,
        has_room_at: HasRoom | None = None,
        has_room_on: HasRoomOn | None = None,
    ) -> None:
        self._local = local
        self._dispatch = dispatch
        self._has_workers_at = has_workers_at
        self._has_room_at = has_room_at or (lambda location, _kind: has_workers_at(location))
        self._has_room_on = has_room_on or (lambda _worker, _location, _key: False)
        self._unclaimed = unclaimed
        self._claim_within_s = claim_within_s
        self._sending: set[asyncio.Task[None]] = set()
        self._awaiting: dict[JobKey, tuple[str, float]] = {}  # dispatched: (where, check at)
        self._queued_since: dict[JobKey, float] = {}  # unclaimed, no worker with room
        self._sent_back: set[JobKey] = set()  # dispatched to the worker that ran them last

    def bind(self, drive: Driver) -> None:
        self._local.bind(drive)

    def submit(
        self, kind: str, job_id: int, location: str | None = None, prefer: str | None = None
    ) -> asyncio.Future[None]:
        """A job pinned to a location always goes to the workers, and waits for one there;
        one that must run here (:data:`RUN_HERE`) never does. One that ``prefer`` (a live
        worker with room there) ran last goes back to it: a paused load run's processes
        wait there for its resume."""
        where = location or ANY_LOCATION
        pinned = where != ANY_LOCATION
        here = where == RUN_HERE or not (pinned or self._has_workers_at(where))
        if self._local.is_running(kind, job_id) or here:
            return self._local.submit(kind, job_id)
        key, to, within_s = (kind, job_id), where, self._claim_within_s
        self._sent_back.discard(key)
        if prefer is not None and self._has_room_on(prefer, where, key):
            to, within_s = worker_address(prefer), PREFERRED_WITHIN_S
            self._sent_back.add(key)
        self._awaiting[key] = (where, time.monotonic() + within_s)
        sending = asyncio.create_task(self._send(kind, job_id, to), name=f"latlab-dispatch-{kind}")
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)
        return sending

    async def _send(self, kind: str, job_id: int, location: str) -> None:
        try:
            await self._dispatch(kind, job_id, location)
        except Exception as exc:  # Redis away: run it here; a worker will not take it over
            if location != ANY_LOCATION:  # never from the wrong place: sent again later
                log.warning("could not dispatch %s job %s: %s", kind, job_id, exc)
                return
            log.warning("could not dispatch %s job %s, running it here: %s", kind, job_id, exc)
            self._awaiting.pop((kind, job_id), None)
            await self._local.submit(kind, job_id)

    async def settled(self) -> None:
        """Wait until every dispatch under way has been sent (or given up)."""
        await asyncio.gather(*self._sending, return_exceptions=True)

    async def watch_claims(self) -> None:
        """Send again what nobody claimed in time, until cancelled (supervised)."""
        while True:
            deliver_lost_cancel()  # a store read may have swallowed a stop
            await asyncio.sleep(CHECK_CLAIMS_EVERY_S)
            await self.resend_unclaimed()

    async def resend_unclaimed(self) -> None:
        now = time.monotonic()
        for key, (where, check_at) in list(self._awaiting.items()):
            if check_at > now:
                continue
            del self._awaiting[key]
            try:
                if not await self._unclaimed(*key):
                    self._queued_since.pop(key, None)
                    self._sent_back.discard(key)
                    continue  # taken, or no longer running
            except StoreUnavailable:
                self._awaiting[key] = (where, now + self._claim_within_s)  # look again later
                continue
            if key in self._sent_back:  # its worker did not take it: any worker may
                self._sent_back.discard(key)
                self.submit(*key, where)
                continue
            if where != ANY_LOCATION and not self._has_workers_at(where):
                self._awaiting[key] = (where, now + self._claim_within_s)  # waiting_for it
                continue
            if self._queued(key, where, now):
                self._awaiting[key] = (where, now + self._claim_within_s)
                continue
            log.warning("%s job %s dispatched but not taken: sending it again", *key)
            self.submit(*key, where)

    def _queued(self, key: JobKey, where: str, now: float) -> bool:
        """Whether an unclaimed job waits behind busy workers (the first to free a slot
        reads it) rather than lost. Workers' views are a heartbeat old, and under a steady
        backlog a freed slot is taken at once: after ``MAX_QUEUED_S`` it is sent again
        anyway (a second message is harmless: the claim runs a job once)."""
        if not self._has_workers_at(where) or self._has_room_at(where, key[0]):
            self._queued_since.pop(key, None)
            return False
        since = self._queued_since.setdefault(key, now)
        if now - since < MAX_QUEUED_S:
            return True
        del self._queued_since[key]
        return False

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


def unclaimed_in(store: Store) -> Unclaimed:
    async def unclaimed(kind: str, job_id: int) -> bool:
        try:
            job = await store.get_job(kind, job_id)
        except JobNotFound:
            return False
        return job.state is JobState.RUNNING and job.progress.get("fleet") is None

    return unclaimed
