"""A new job kind, added only through the public way: a runner class and its registration."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from harness import running_engine
from latlab.jobs.kinds import builtin_runners
from latlab.jobs.runner import KindRunner, ResumePolicy, RunContext, Service, Started
from latlab.jobs.state import Action
from latlab.storage import JobRecord, JobState
from latlab.storage.memory import MemoryStore
from latlab.storage.records import ProgressUpdate


class Metronome(KindRunner):
    """A toy kind: its jobs wait for beats of one shared service, checkpointing each beat."""

    kind = "metronome"

    def __init__(self, resume: ResumePolicy = ResumePolicy.RESUME) -> None:
        self.resume = resume
        self.beat = asyncio.Condition()
        self.beats = 0

    def services(self, ctx: RunContext) -> Sequence[Service]:
        return [Service("metronome", self._tick)]

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.001)
            async with self.beat:
                self.beats += 1
                self.beat.notify_all()

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        heard = int(job.progress.get("heard", 0))
        started()
        while heard < int(job.spec["beats"]):
            async with self.beat:
                await self.beat.wait()
            heard += 1
            await ctx.writer.write([], [ProgressUpdate(self.kind, job.id, {"heard": heard})])

    async def stopped(self, job: JobRecord, ctx: RunContext, *, ran_here: bool) -> dict[str, str]:
        return {"stopped_by": "user" if ran_here else "elsewhere"}


async def until_state(store: MemoryStore, job_id: int, state: JobState) -> JobRecord:
    for _ in range(5000):
        job = await store.get_job("metronome", job_id)
        if job.state is state:
            return job
        await asyncio.sleep(0.001)
    raise AssertionError(f"never {state}")


async def until_heard(store: MemoryStore, job_id: int, beats: int) -> int:
    for _ in range(5000):
        heard = int((await store.get_job("metronome", job_id)).progress.get("heard", 0))
        if heard >= beats:
            return heard
        await asyncio.sleep(0.001)
    raise AssertionError(f"never heard {beats} beats")


async def test_a_toy_kind_runs_beside_the_builtin_ones() -> None:
    store = MemoryStore()
    async with running_engine(store, [*builtin_runners(), Metronome()]) as manager:
        job = await manager.create("metronome", {"beats": 5}, start=True)
        done = await until_state(store, job.id, JobState.COMPLETED)
        assert done.progress["heard"] == 5
        bot = await manager.create("bot", {"start_number": 0}, start=True)
        assert (job.id, bot.id) == (1, 1)  # ids are per kind


async def test_stopping_keeps_what_the_kind_reports() -> None:
    store = MemoryStore()
    async with running_engine(store, [Metronome()]) as manager:
        job = await manager.create("metronome", {"beats": 10**9}, start=True)
        stopped = await manager.act("metronome", job.id, Action.STOP)
    assert stopped.state is JobState.STOPPED
    assert stopped.progress["stopped_by"] == "user"


async def test_a_kind_that_resumes_continues_from_its_checkpoint() -> None:
    store = MemoryStore()
    async with running_engine(store, [Metronome()]) as manager:
        job = await manager.create("metronome", {"beats": 10**9}, start=True)
        await until_heard(store, job.id, 2)
    heard = int((await store.get_job("metronome", job.id)).progress["heard"])
    async with running_engine(store, [Metronome()]):
        await until_heard(store, job.id, heard + 2)
        assert (await store.get_job("metronome", job.id)).state is JobState.RUNNING


async def test_a_kind_that_cannot_resume_is_failed_as_interrupted_with_its_progress() -> None:
    store = MemoryStore()
    async with running_engine(store, [Metronome()]) as manager:
        job = await manager.create("metronome", {"beats": 10**9}, start=True)
        heard = await until_heard(store, job.id, 2)
    async with running_engine(store, [Metronome(ResumePolicy.FAIL)]):
        failed = await store.get_job("metronome", job.id)
    assert (failed.state, failed.error) == (JobState.FAILED, "interrupted")
    assert failed.progress["heard"] >= heard
