"""A worker's side of dispatch: the claim (a fenced compare-and-set) and running the job."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from harness import CountingTarget, wait_for
from latlab.coordination.redis import RedisCoordinator
from latlab.jobs.clock import SystemClock
from latlab.jobs.events import Events
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.fleet import Dispatch, FleetExecutor, unclaimed_in
from latlab.jobs.kinds.probe import ProbeRunner
from latlab.jobs.manager import JobManager
from latlab.jobs.runner import JobRunner, KindRunner, RunContext, Started
from latlab.jobs.state import Action
from latlab.jobs.worker import Worker
from latlab.measure.client import ProbeClient
from latlab.storage import JobRecord, JobState
from latlab.storage.memory import MemoryStore
from latlab.storage.records import ProgressUpdate
from latlab.storage.writer import BatchWriter
from services import drop_redis_keys, require_redis
from swallowed import ends_when_cancelled, swallow_the_cancel


class Quick(KindRunner):
    kind = "quick"

    def __init__(self) -> None:
        self.ran: list[int] = []

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        self.ran.append(job.id)
        started()


class Holding(KindRunner):
    """Runs until halted; ``kind`` chooses the lane (``bot`` is light)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.running = asyncio.Event()

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        started()
        self.running.set()
        await asyncio.Event().wait()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"worker-{secrets.token_hex(4)}"
    yield prefix
    await drop_redis_keys(require_redis(), prefix)


@asynccontextmanager
async def worker_on(store: MemoryStore, prefix: str, *runners: JobRunner) -> AsyncIterator[Worker]:
    coordinator = await RedisCoordinator.open(require_redis(), prefix)
    async with BatchWriter(store, delay_s=0) as writer:
        ctx = RunContext(store, writer, SystemClock(), ProbeClient(), coordinator, Events())
        executor = InProcessExecutor()
        manager = JobManager(ctx, executor, list(runners), adopts=False)
        await manager.start()
        try:
            yield Worker(ctx, manager, executor, location="eu-1", capacity=2)
        finally:
            await manager.shutdown()
            await coordinator.close()


class Api:
    """An API process's manager whose executor dispatches through ``dispatch``, once bound."""

    def __init__(self) -> None:
        self._dispatch: Dispatch | None = None
        self.manager: JobManager

    def bind_dispatch(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch

    async def dispatch(self, kind: str, job_id: int, location: str) -> None:
        assert self._dispatch is not None
        await self._dispatch(kind, job_id, location)


@asynccontextmanager
async def api_on(store: MemoryStore, prefix: str) -> AsyncIterator[Api]:
    coordinator = await RedisCoordinator.open(require_redis(), prefix)
    async with BatchWriter(store, delay_s=0) as writer:
        ctx = RunContext(store, writer, SystemClock(), ProbeClient(), coordinator, Events())
        api = Api()
        executor = FleetExecutor(
            InProcessExecutor(), api.dispatch, lambda _where: True, unclaimed_in(store)
        )
        api.manager = JobManager(ctx, executor, [Quick()])
        await api.manager.start()
        try:
            yield api
        finally:
            await api.manager.shutdown()
            await coordinator.close()


async def running(store: MemoryStore, kind: str, fleet: str | None = None) -> int:
    (job,) = await store.create_jobs(kind, [{}], state=JobState.RUNNING)
    if fleet is not None:
        await store.checkpoint([], [ProgressUpdate(kind, job.id, {"fleet": fleet})])
    return job.id


async def owner_of(store: MemoryStore, kind: str, job_id: int) -> object:
    return (await store.get_job(kind, job_id)).progress.get("fleet")


async def test_an_unclaimed_job_is_claimed_and_run_here(prefix: str) -> None:
    store, quick = MemoryStore(), Quick()
    job_id = await running(store, "quick")
    async with worker_on(store, prefix, quick) as worker:
        await worker.run_job("quick", job_id)
        me = worker.info().id
    assert quick.ran == [job_id]
    assert await owner_of(store, "quick", job_id) == me


async def test_a_job_whose_owner_is_alive_is_left_to_it(prefix: str) -> None:
    store, quick = MemoryStore(), Quick()
    owner = await RedisCoordinator.open(require_redis(), prefix)
    try:
        job_id = await running(store, "quick", fleet=owner.owner_id)
        async with worker_on(store, prefix, quick) as worker:
            await worker.run_job("quick", job_id)
    finally:
        await owner.close()
    assert quick.ran == []
    assert await owner_of(store, "quick", job_id) == owner.owner_id


async def test_a_dead_owners_job_is_taken_and_the_old_owner_is_fenced_out(prefix: str) -> None:
    store, quick = MemoryStore(), Quick()
    job_id = await running(store, "quick", fleet="gone-owner")
    async with worker_on(store, prefix, quick) as worker:
        await worker.run_job("quick", job_id)
    woken = ProgressUpdate("quick", job_id, {"done": 1}, owner="gone-owner")
    assert await store.checkpoint([], [woken]) == {("quick", job_id)}  # a frozen one waking
    assert quick.ran == [job_id]
    progress = (await store.get_job("quick", job_id)).progress
    assert "done" not in progress
    assert progress["handed_from"] == "gone-owner"  # a bot counts on from its heartbeat


async def test_of_two_workers_racing_for_one_job_one_runs_it(prefix: str) -> None:
    store, quick = MemoryStore(), Quick()
    job_id = await running(store, "quick")
    async with (
        worker_on(store, prefix, quick) as first,
        worker_on(store, prefix, quick) as second,
    ):
        await asyncio.gather(first.run_job("quick", job_id), second.run_job("quick", job_id))
    assert quick.ran == [job_id]


async def test_a_job_no_longer_running_is_not_run(prefix: str) -> None:
    store, quick = MemoryStore(), Quick()
    (job,) = await store.create_jobs("quick", [{}], state=JobState.PAUSED)
    async with worker_on(store, prefix, quick) as worker:
        await worker.run_job("quick", job.id)
        await worker.run_job("quick", job.id + 1)  # gone altogether
    assert quick.ran == []


async def test_a_kind_the_worker_does_not_run_is_refused(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    job_id = await running(store, "unknown")
    async with worker_on(store, prefix, Quick()) as worker:
        await worker.run_job("unknown", job_id)
    assert await owner_of(store, "unknown", job_id) is None
    assert "a kind this worker does not run" in caplog.text


async def test_a_heavy_job_holds_its_slot_until_it_ends_a_bot_only_until_it_starts(
    prefix: str,
) -> None:
    store, heavy, bot = MemoryStore(), Holding("probe"), Holding("bot")
    probe_id, bot_id = await running(store, "probe"), await running(store, "bot")
    async with worker_on(store, prefix, heavy, bot) as worker:
        await worker.run_job("bot", bot_id)  # returns: the bot runs on
        holding = asyncio.create_task(worker.run_job("probe", probe_id))
        await heavy.running.wait()
        assert not holding.done()
        assert sorted(worker.info().jobs) == [("bot", bot_id), ("probe", probe_id)]
    await asyncio.wait_for(holding, 5)  # the worker's shutdown halted it


async def test_a_worker_adopts_nothing_itself(prefix: str) -> None:
    store, quick = MemoryStore(), Quick()
    await running(store, "quick", fleet="gone-owner")
    async with worker_on(store, prefix, quick) as worker:
        await wait_for(worker_adopted_nothing(worker), what="the first adoption")
        assert await worker._manager.adopt() == 0
    assert quick.ran == []


def worker_adopted_nothing(worker: Worker):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return await worker._manager.adopted() == 0

    return check


async def test_a_job_resumed_after_its_worker_halted_it_is_taken_by_another(prefix: str) -> None:
    """Found in review: pause and resume kept the checkpoint naming the first worker, alive,
    so no other worker would claim it and the job stayed running with nothing running it."""
    store, quick = MemoryStore(), Quick()
    first = await RedisCoordinator.open(require_redis(), prefix)  # ran it, still alive
    job_id = await running(store, "quick", fleet=first.owner_id)
    try:
        async with worker_on(store, prefix, quick) as second, api_on(store, prefix) as api:
            sent = asyncio.Event()

            async def dispatch(kind: str, job_id: int, location: str) -> None:
                await second.run_job(kind, job_id)
                sent.set()

            api.bind_dispatch(dispatch)
            await api.manager.act("quick", job_id, Action.PAUSE)
            await api.manager.act("quick", job_id, Action.RESUME)
            await asyncio.wait_for(sent.wait(), 5)
    finally:
        await first.close()
    assert quick.ran == [job_id]
    assert (await store.get_job("quick", job_id)).state is JobState.COMPLETED


async def test_a_worker_stopped_while_claiming_does_not_start_the_job(prefix: str) -> None:
    """Found in review: a stop swallowed by the claim's Redis call let the claim go on and
    the job start, and the worker's shutdown then waited for that job for ever."""
    store, heavy = MemoryStore(), Holding("probe")
    job_id = await running(store, "probe", fleet="gone-owner")
    async with worker_on(store, prefix, heavy) as worker:
        asking = asyncio.Event()

        async def alive(owner: str) -> bool:
            await swallow_the_cancel(asking)
            return False

        worker._ctx.coordinator.alive = alive  # type: ignore[method-assign]
        claiming = asyncio.create_task(worker.run_job("probe", job_id))
        await ends_when_cancelled(claiming, asking)
        assert worker.info().jobs == []
    assert not heavy.running.is_set()


async def test_a_spec_the_worker_finds_invalid_fails_the_job_before_any_probe(
    prefix: str,
) -> None:
    """Issue 13: a worker validates a job's spec again, whatever the store holds (one written
    past the API: a store shared with another version, or tampered with); nothing is sent."""
    store = MemoryStore()
    async with CountingTarget() as target:
        spec = {"host": "127.0.0.1", "port": target.port, "interval_s": -1, "count": 3}
        (job,) = await store.create_jobs("probe", [spec], state=JobState.RUNNING)
        async with worker_on(store, prefix, ProbeRunner()) as worker:
            await worker.run_job("probe", job.id)

            async def failed() -> bool:
                return (await store.get_job("probe", job.id)).state is JobState.FAILED

            await wait_for(failed, 10, "the job to fail")
        ended = await store.get_job("probe", job.id)
    assert ended.error is not None
    assert "interval_s" in ended.error
    assert target.requests == 0
