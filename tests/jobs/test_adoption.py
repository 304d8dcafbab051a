"""Which running jobs a process adopts when jobs are shared through Redis."""

from __future__ import annotations

import secrets

from harness import running_engine
from latlab.coordination.redis import RedisCoordinator
from latlab.jobs.runner import KindRunner, RunContext, Started
from latlab.storage import JobRecord, JobState
from latlab.storage.memory import MemoryStore
from latlab.storage.records import ProgressUpdate
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
    assert runner.ran == [of_a_dead_owner]
    assert unclaimed not in runner.ran
