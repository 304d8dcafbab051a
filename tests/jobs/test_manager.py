"""The manager's lifecycle with a job kind made for the test, on the memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from harness import running_engine
from latlab.coordination.local import LocalCoordinator
from latlab.jobs.clock import SystemClock
from latlab.jobs.events import Events
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.manager import JobManager
from latlab.jobs.runner import KindRunner, RunContext, Started
from latlab.jobs.state import Action, InvalidTransition
from latlab.measure.client import ProbeClient
from latlab.storage import JobNotFound, JobRecord, JobState, Page, Store, StoreUnavailable
from latlab.storage.memory import MemoryStore
from latlab.storage.records import ProgressUpdate
from latlab.storage.writer import BatchWriter


class StepRunner(KindRunner):
    """Counts steps into its progress; each step waits for the test to release it."""

    kind = "steps"

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.release = asyncio.Semaphore(0)
        self.runs = 0

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        self.runs += 1
        started()
        step = int((await ctx.store.get_job(self.kind, job.id)).progress.get("step", 0))
        while step < int(job.spec["steps"]):
            await self.release.acquire()
            if step == self.fail_at:
                raise RuntimeError("step exploded")
            step += 1
            await ctx.writer.write(progress=[ProgressUpdate(self.kind, job.id, {"step": step})])


@pytest.fixture
def store() -> Store:
    return MemoryStore()


async def open_manager(store: Store, runner: StepRunner) -> AsyncIterator[JobManager]:
    async with running_engine(store, [runner]) as manager:
        yield manager


def runs_here(manager: JobManager, job_id: int) -> bool:
    return ("steps", job_id) in manager.running_here()


async def settle(store: Store, job_id: int, state: JobState) -> JobRecord:
    for _ in range(1000):
        job = await store.get_job("steps", job_id)
        if job.state is state:
            return job
        await asyncio.sleep(0)
    raise AssertionError(f"job never became {state}")


async def checkpointed(store: Store, job_id: int, step: int) -> None:
    for _ in range(1000):
        if (await store.get_job("steps", job_id)).progress.get("step") == step:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"step {step} never checkpointed")


async def test_completes_after_every_step(store: Store) -> None:
    runner = StepRunner()
    async for manager in open_manager(store, runner):
        job = await manager.create("steps", {"steps": 2})
        await manager.act("steps", job.id, Action.START)
        runner.release.release()
        runner.release.release()
        done = await settle(store, job.id, JobState.COMPLETED)
        assert done.progress["step"] == 2
        assert not runs_here(manager, job.id)


async def test_a_raising_job_is_failed_with_its_error(store: Store) -> None:
    runner = StepRunner(fail_at=0)
    async for manager in open_manager(store, runner):
        job = await manager.create("steps", {"steps": 1})
        await manager.act("steps", job.id, Action.START)
        runner.release.release()
        failed = await settle(store, job.id, JobState.FAILED)
        assert failed.error == "RuntimeError: step exploded"


async def test_running_jobs_resume_from_their_checkpoint_after_restart(store: Store) -> None:
    first = StepRunner()
    async for manager in open_manager(store, first):
        job = await manager.create("steps", {"steps": 3})
        await manager.act("steps", job.id, Action.START)
        first.release.release()
        await checkpointed(store, job.id, step=1)
    assert (await store.get_job("steps", job.id)).state is JobState.RUNNING  # kept for restart
    second = StepRunner()
    for _ in range(2):
        second.release.release()
    async for manager in open_manager(store, second):
        done = await settle(store, job.id, JobState.COMPLETED)
        assert (second.runs, done.progress["step"]) == (1, 3)
        assert runs_here(manager, job.id) is False


async def test_paused_and_created_jobs_stay_put_at_start_up(store: Store) -> None:
    paused = await store.create_job("steps", {"steps": 1})
    await store.set_state("steps", paused.id, JobState.PAUSED, expected={JobState.CREATED})
    created = await store.create_job("steps", {"steps": 1})
    runner = StepRunner()
    async for manager in open_manager(store, runner):
        assert runner.runs == 0
        assert not runs_here(manager, paused.id)
        assert not runs_here(manager, created.id)


async def test_unknown_job_and_unknown_kind(store: Store) -> None:
    async for manager in open_manager(store, StepRunner()):
        with pytest.raises(JobNotFound):
            await manager.act("steps", 99, Action.START)
        with pytest.raises(JobNotFound):
            await manager.delete("steps", 99)
        with pytest.raises(ValueError, match="no runner"):
            await manager.create("nope", {})


async def test_pause_of_a_completed_job_is_an_invalid_transition(store: Store) -> None:
    runner = StepRunner()
    async for manager in open_manager(store, runner):
        job = await manager.create("steps", {"steps": 0})
        await manager.act("steps", job.id, Action.START)
        await settle(store, job.id, JobState.COMPLETED)
        with pytest.raises(InvalidTransition):
            await manager.act("steps", job.id, Action.PAUSE)


class FailsBeforeStarting(KindRunner):
    kind = "steps"

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        raise RuntimeError("broken before it started")


async def test_a_start_whose_job_fails_before_starting_answers_and_fails_it(store: Store) -> None:
    async with running_engine(store, [FailsBeforeStarting()]) as manager:
        job = await manager.create("steps", {"steps": 1})
        # Deadlocked before: the start held the job's lock, the failing job waited for it.
        await asyncio.wait_for(manager.act("steps", job.id, Action.START), timeout=5)
        failed = await settle(store, job.id, JobState.FAILED)
    assert failed.error == "RuntimeError: broken before it started"


class ListingFailsOnce(MemoryStore):
    """A store whose first listing meets an outage (the rare path, at the store's seam)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def list_jobs(self, kind: str, **filters: Any) -> Page[JobRecord]:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("blip")
        return await super().list_jobs(kind, **filters)


async def test_a_blip_during_start_up_adoption_still_resumes_every_job() -> None:
    store = ListingFailsOnce()
    job = await store.create_job("steps", {"steps": 1})
    await store.set_state("steps", job.id, JobState.RUNNING, expected={JobState.CREATED})
    runner = StepRunner()
    runner.release.release()
    async with running_engine(store, [runner]) as manager:
        assert await manager.adopted() == 1
        done = await settle(store, job.id, JobState.COMPLETED)
    assert (store.failures, done.progress["step"]) == (0, 1)


class ClosesAtShutdown(KindRunner):
    """Records its close; one made to fail as a store write away at shutdown would."""

    def __init__(self, kind: str, fails: bool = False) -> None:
        self.kind = kind
        self.fails = fails
        self.closed = False

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        started()

    async def close(self, ctx: RunContext) -> None:
        self.closed = True
        if self.fails:
            raise StoreUnavailable("away at shutdown")


async def test_a_kind_whose_close_meets_the_store_away_does_not_keep_the_next_from_closing(
    store: Store,
) -> None:
    """Found in review: the bots' last heartbeat write failing at shutdown skipped the load
    runs' close, and their warm processes were left running."""
    first, second = ClosesAtShutdown("first", fails=True), ClosesAtShutdown("second")
    async with running_engine(store, [first, second]):
        pass
    assert (first.closed, second.closed) == (True, True)


class RecordingExecutor(InProcessExecutor):
    """Runs here, and records where each job was asked to go back to."""

    def __init__(self) -> None:
        super().__init__()
        self.back_to: list[tuple[int, str | None]] = []

    def submit(
        self, kind: str, job_id: int, location: str | None = None, prefer: str | None = None
    ) -> asyncio.Future[None]:
        self.back_to.append((job_id, prefer))
        return super().submit(kind, job_id, location, prefer)


async def test_only_a_job_started_again_is_sent_back_to_the_process_that_ran_it(
    store: Store,
) -> None:
    """Found in review: an adopted job was sent back to the process its old ``handed_from``
    named, a stream only that worker reads; not taken there, nobody sent it on."""
    paused = await store.create_job("steps", {"steps": 1})
    orphan = await store.create_job("steps", {"steps": 1})
    for job, state in ((paused, JobState.PAUSED), (orphan, JobState.RUNNING)):
        await store.set_state("steps", job.id, state, expected={JobState.CREATED})
    ran_there = {"fleet": "worker-a", "handed_from": "worker-b"}
    updates = [ProgressUpdate("steps", job.id, ran_there) for job in (paused, orphan)]
    await store.checkpoint([], updates)
    executor = RecordingExecutor()
    async with BatchWriter(store, delay_s=0) as writer:
        ctx = RunContext(store, writer, SystemClock(), ProbeClient(), LocalCoordinator(), Events())
        manager = JobManager(ctx, executor, [StepRunner()])
        try:
            await manager.start()
            await manager.adopted()  # the orphan: adopted here, sent back nowhere
            await manager.act("steps", paused.id, Action.RESUME)
        finally:
            await manager.shutdown()
    assert executor.back_to == [(orphan.id, None), (paused.id, "worker-a")]
