"""Which running jobs a process adopts when jobs are shared through Redis."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
import redis.asyncio as redis

from harness import running_engine, wait_for
from latlab.coordination import LocalCoordinator
from latlab.coordination.redis import RedisCoordinator
from latlab.jobs.clock import SystemClock
from latlab.jobs.events import Events
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.manager import JobManager
from latlab.jobs.runner import KindRunner, ResumePolicy, RunContext, Started, fence_owner
from latlab.measure.client import ProbeClient
from latlab.storage import JobRecord, JobState
from latlab.storage.memory import MemoryStore
from latlab.storage.records import Page, ProgressUpdate
from latlab.storage.writer import BatchWriter
from services import require_redis


class Idle(KindRunner):
    kind = "idle"

    def __init__(self) -> None:
        self.ran: list[int] = []

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        self.ran.append(job.id)
        started()


async def running_job(store: MemoryStore, progress: dict[str, str] | None = None) -> int:
    (job,) = await store.create_jobs("idle", [{}], state=JobState.RUNNING)
    if progress is not None:
        await store.checkpoint([], [ProgressUpdate("idle", job.id, progress)])
    return job.id


async def test_a_job_just_started_elsewhere_is_not_adopted_before_its_claim() -> None:
    store = MemoryStore()
    unclaimed = await running_job(store)  # its creator claims it within milliseconds
    of_a_dead_owner = await running_job(store, {"fleet": f"gone-{secrets.token_hex(4)}"})
    coordinator = await RedisCoordinator.open(require_redis(), f"t-{secrets.token_hex(4)}")
    runner = Idle()
    async with running_engine(store, [runner], coordinator) as manager:
        assert await manager.adopted() == 1

        async def ran() -> bool:  # adopted is launched, not yet run: its claim asks Redis
            return bool(runner.ran)

        await wait_for(ran, 10, "the adopted job to run")
    assert runner.ran == [of_a_dead_owner]
    assert unclaimed not in runner.ran


class SlowListing(MemoryStore):
    """Its listings wait for ``release``: an adoption at start-up on a busy machine."""

    def __init__(self) -> None:
        super().__init__()
        self.listing, self.release = asyncio.Event(), asyncio.Event()

    async def list_jobs(self, *args: Any, **kwargs: Any) -> Page[JobRecord]:
        self.listing.set()
        await self.release.wait()
        return await super().list_jobs(*args, **kwargs)


class Interruptible(KindRunner):
    kind = "interruptible"
    resume = ResumePolicy.FAIL  # as load runs: one found running at start-up was interrupted

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        started()
        await asyncio.Event().wait()


async def test_a_job_started_while_the_first_adoption_lists_the_store_is_not_its_to_fail() -> None:
    """Found by a CI run: a load run started while the start-up adoption was still listing
    the store was marked failed "interrupted" (and the running quota let a second one in)."""
    store = SlowListing()
    async with BatchWriter(store, delay_s=0) as writer:
        ctx = RunContext(store, writer, SystemClock(), ProbeClient(), LocalCoordinator(), Events())
        manager = JobManager(ctx, InProcessExecutor(), [Interruptible()])
        await manager.start()
        await store.listing.wait()
        job = await manager.create("interruptible", {}, start=True)
        store.release.set()
        await manager.adopted()
        state = (await store.get_job("interruptible", job.id)).state
        await manager.shutdown()
    assert state is JobState.RUNNING


async def test_a_job_a_worker_claimed_meanwhile_is_not_run_here_as_well() -> None:
    """Found in review: the control plane ran a job it had read unclaimed (a dispatch nobody
    seemed to take) with an unconditional claim, though a worker had claimed it meanwhile:
    both ran it."""
    store, prefix = MemoryStore(), f"t-{secrets.token_hex(4)}"
    job_id = await running_job(store)
    stale = await store.get_job("idle", job_id)  # read while nobody held it
    worker = await RedisCoordinator.open(require_redis(), prefix)  # alive: it holds a lease
    claim = ProgressUpdate("idle", job_id, {"fleet": worker.owner_id})
    await store.checkpoint([], [claim])
    runner = Idle()
    try:
        here = await RedisCoordinator.open(require_redis(), prefix)
        async with running_engine(store, [runner], here) as manager:
            await manager.launch([stale])
            held = await store.get_job("idle", job_id)
    finally:
        await worker.close()
    assert runner.ran == []
    assert (held.state, held.progress["fleet"]) == (JobState.RUNNING, worker.owner_id)


async def test_a_job_a_live_worker_holds_is_not_taken_over_when_read_afresh() -> None:
    """Found in review: run here after a dispatch nobody seemed to take, the job is read
    afresh, names the worker that took it meanwhile, and the claim's compare-and-set on
    that owner passed: both ran it. A live owner keeps its job."""
    store, prefix = MemoryStore(), f"t-{secrets.token_hex(4)}"
    job_id = await running_job(store)
    worker = await RedisCoordinator.open(require_redis(), prefix)  # alive: it holds a lease
    await store.checkpoint([], [ProgressUpdate("idle", job_id, {"fleet": worker.owner_id})])
    runner = Idle()
    try:
        here = await RedisCoordinator.open(require_redis(), prefix)
        async with running_engine(store, [runner], here) as manager:
            await manager.launch([await store.get_job("idle", job_id)])
            held = await store.get_job("idle", job_id)
    finally:
        await worker.close()
    assert runner.ran == []
    assert held.progress["fleet"] == worker.owner_id


class AliveFailsOnce(RedisCoordinator):
    """Redis errs once when asked whether an owner is alive (the transport's seam)."""

    failed = False

    async def alive(self, owner: str) -> bool:
        if not self.failed:
            self.failed = True
            raise redis.ConnectionError("Redis went away for a moment")
        return await super().alive(owner)


async def test_a_redis_error_while_claiming_an_adopted_job_is_asked_again() -> None:
    """Found in review: the owner check's Redis error crashed the job's task after its
    adoption, which no other process would repeat: it stayed running with nobody running it."""
    store = MemoryStore()
    job_id = await running_job(store, {"fleet": f"gone-{secrets.token_hex(4)}"})
    coordinator = await AliveFailsOnce.open(require_redis(), f"t-{secrets.token_hex(4)}")
    runner = Idle()
    async with running_engine(store, [runner], coordinator) as manager:
        await manager.adopted()

        async def ran() -> bool:
            return runner.ran == [job_id]

        await wait_for(ran, 10, "the adopted job to run")
    assert coordinator.failed


class Writing(KindRunner):
    """Checkpoints its count every few milliseconds, fenced as every runner's are."""

    kind = "writing"

    def __init__(self) -> None:
        self.written = 0
        self.ended = asyncio.Event()

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        started()
        try:
            while True:
                update = ProgressUpdate(self.kind, job.id, {"n": self.written}, fence_owner(ctx))
                await ctx.writer.write([], [update])
                self.written += 1
                await asyncio.sleep(0.005)
        finally:
            self.ended.set()


async def test_a_job_handed_on_behind_its_back_halts_at_its_next_refused_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found in review: a fenced-out checkpoint was dropped in silence, so a process whose
    job had been handed on (a frozen worker woken before its guard looked) went on running
    it unheard, its probes reaching the target twice. Now the refused write halts it there,
    and the job is left running for the owner that holds it."""
    store, prefix = MemoryStore(), f"t-{secrets.token_hex(4)}"
    (job,) = await store.create_jobs("writing", [{}], state=JobState.RUNNING)
    await store.checkpoint([], [ProgressUpdate("writing", job.id, {"fleet": "gone-1"})])
    runner, other = Writing(), await RedisCoordinator.open(require_redis(), prefix)
    try:
        here = await RedisCoordinator.open(require_redis(), prefix)
        async with running_engine(store, [runner], here):

            async def writing() -> bool:
                return runner.written >= 3

            await wait_for(writing, 10, "the adopted job to write")
            taken = ProgressUpdate("writing", job.id, {"fleet": other.owner_id})
            await store.checkpoint([], [taken])
            await asyncio.wait_for(runner.ended.wait(), 10)
            held = await store.get_job("writing", job.id)
    finally:
        await other.close()
    assert (held.state, held.progress["fleet"]) == (JobState.RUNNING, other.owner_id)
    assert f"writing job {job.id}: checkpoint refused, held elsewhere now" in caplog.text
