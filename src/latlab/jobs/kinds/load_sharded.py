"""Load runs split over workers: each shard is a job of its own, followed and merged here.

A run with ``shards: N`` (or ``locations``) is not sent from one place. At its first start
the control plane process creates N jobs of kind ``load_shard``, each sending its share of
the run (connections and requests divided as :func:`~latlab.measure.load.plan.shares`
divides them, nothing lost; the rate divided evenly), and starts them like any job: the
workers take them. Each shard checkpoints its own seconds (HDR histograms) in the store.

The run itself is followed by the process that started it (another one adopts it if that
one dies): once every shard still running has stored second ``n``, it writes second ``n``
of the run as the exact merge of the shards' second ``n``: HDR histograms of one
configuration add bucket for bucket, so the run's stats are those of one histogram of every
request. Thresholds are judged on the merge. Pause, resume, stop and delete of the run act
on its shards.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from latlab.jobs.driver import JobFailed
from latlab.jobs.kinds.load_follow import SHARD_KIND, ShardFailed, ShardFollower, read_shards
from latlab.jobs.kinds.load_spec import MAX_SHARDS, LoadRunSpec
from latlab.jobs.kinds.load_stats import DRAINED_KEY, StoredTotals, final_progress
from latlab.jobs.kinds.spec_checks import location_field
from latlab.jobs.runner import RunContext, Started, fence_owner
from latlab.jobs.state import Action, InvalidTransition
from latlab.jobs.supervise import until_stored
from latlab.measure.load.plan import shares
from latlab.storage import JobNotFound, JobRecord, JobState
from latlab.storage.records import ProgressUpdate

if TYPE_CHECKING:  # the manager runs the kinds: theirs to be handed it, not to import it
    from latlab.jobs.manager import JobManager

__all__ = ["SHARD_KIND", "ShardSpec", "ShardedRuns", "shard_of"]

FOLLOW_EVERY_S = 0.1  # how often a run reads its shards' progress
DRAIN_WAIT_S = 6.0  # a stopped shard's worker stores its last seconds within 5 s


class ShardSpec(BaseModel):
    """A shard job's spec: which run it is a share of; the rest is read from the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: StrictInt = Field(ge=1)
    index: StrictInt = Field(ge=0, lt=MAX_SHARDS)
    location: str | None = location_field("the shard")


def shard_of(spec: LoadRunSpec, index: int) -> LoadRunSpec:
    """Shard ``index``'s share of the run. Its thresholds are the run's, judged on the merge;
    a side probe runs beside the first shard only."""
    count = spec.shard_count
    requests = None if spec.requests is None else shares(spec.requests, count)[index]
    changes: dict[str, Any] = {
        "connections": shares(spec.connections, count)[index],
        "requests": requests,
        "rate": None if spec.rate is None else spec.rate / count,
        "shards": 1,
        "locations": None,
        "thresholds": [],
        "probe": spec.probe if index == 0 else None,
    }
    return spec.model_copy(update=changes)


def shard_ids(job: JobRecord) -> list[int]:
    ids = job.progress.get("shards")
    return [int(i) for i in ids] if isinstance(ids, list) else []


class ShardedRuns:
    """Runs, pauses and stops sharded runs; bound to the job manager once it exists."""

    def __init__(self) -> None:
        self._jobs: JobManager | None = None

    def bind(self, jobs: JobManager) -> None:
        self._jobs = jobs

    def _bound(self) -> JobManager:
        if self._jobs is None:
            raise JobFailed("sharded load runs are not available in this process")
        return self._jobs

    async def run(
        self, job: JobRecord, spec: LoadRunSpec, ctx: RunContext, started: Started
    ) -> None:
        jobs = self._bound()
        ids = (
            shard_ids(job)
            or await self._left(job, spec, ctx)
            or await self._created(job, spec, ctx, jobs)
        )
        await _each(jobs, await _halted(ctx, ids), functools.partial(_act, Action.START))
        started()
        stored = await until_stored(
            f"load run {job.id}", functools.partial(StoredTotals.read, ctx.store, job, spec)
        )
        follower = ShardFollower(job, spec, ctx, ids, stored)
        try:
            while True:  # the shards run in other processes: their progress is in the store
                if await follower.step():
                    break
                await asyncio.sleep(FOLLOW_EVERY_S)
        except ShardFailed as failed:
            await _each(jobs, ids, functools.partial(_act, Action.STOP))
            raise JobFailed(str(failed)) from None
        values = {**follower.progress, **final_progress(spec, follower.summary())}
        update = ProgressUpdate(job.kind, job.id, values, follower.owner)
        await until_stored(f"load run {job.id}", functools.partial(ctx.writer.write, [], [update]))

    async def _left(self, job: JobRecord, spec: LoadRunSpec, ctx: RunContext) -> list[int]:
        """The shards an earlier start created but died before recording: taken, not made
        again (nothing else would ever list them)."""
        read = functools.partial(ctx.store.list_jobs, SHARD_KIND, states={JobState.CREATED})
        page = await until_stored(f"load run {job.id}", read)
        left = {
            int(shard.spec.get("index", -1)): shard.id
            for shard in page.items
            if shard.spec.get("run") == job.id
        }
        if sorted(left) != list(range(spec.shard_count)):
            return []
        ids = [left[index] for index in range(spec.shard_count)]
        await self._record(job, ctx, ids)
        return ids

    async def _record(self, job: JobRecord, ctx: RunContext, ids: list[int]) -> None:
        update = ProgressUpdate(job.kind, job.id, {"shards": ids}, fence_owner(ctx))
        await until_stored(f"load run {job.id}", functools.partial(ctx.writer.write, [], [update]))

    async def _created(
        self, job: JobRecord, spec: LoadRunSpec, ctx: RunContext, jobs: JobManager
    ) -> list[int]:
        """The run's shards, created stopped-safe: their ids are recorded before any starts,
        so a crash in between leaves ``created`` jobs, never load nobody follows."""
        locations: list[str | None] = [*spec.locations] if spec.locations else []
        locations += [None] * (spec.shard_count - len(locations))
        specs = [
            ShardSpec(run=job.id, index=index, location=location).model_dump()
            for index, location in enumerate(locations)
        ]
        made = await jobs.create_many(SHARD_KIND, specs)
        ids = [shard.id for shard in made]
        await self._record(job, ctx, ids)
        return ids

    async def paused(self, job: JobRecord) -> None:
        await _each(self._bound(), shard_ids(job), functools.partial(_act, Action.PAUSE))

    async def stopped(
        self, job: JobRecord, spec: LoadRunSpec, ctx: RunContext, *, ran_here: bool
    ) -> dict[str, Any]:
        """Stop the shards, wait (bounded) for each to store its last seconds, then keep
        the merge of everything they stored. A run followed by another process is summed up
        as it stored it: that follower may still be writing until it is told to halt."""
        ids = shard_ids(job)
        running = await _drain_marks(ctx, ids)
        await _each(self._bound(), ids, functools.partial(_act, Action.STOP))
        await _until_drained(ctx, running)
        read = functools.partial(StoredTotals.read, ctx.store, job, spec)
        stored = await until_stored(f"load run {job.id} stop", read)
        if not ran_here:
            return final_progress(
                spec, stored.summary(spec, float(job.progress.get("elapsed_s", 0)))
            )
        follower = ShardFollower(job, spec, ctx, ids, stored)
        with contextlib.suppress(ShardFailed):
            await follower.step(final=True)
        return {**follower.progress, **final_progress(spec, follower.summary())}

    async def deleting(self, job: JobRecord) -> None:
        """Before the run goes: its shards stop and go too."""
        await _each(self._bound(), shard_ids(job), _deleted)


async def _each(jobs: JobManager, ids: Sequence[int], apply: _ShardAction) -> None:
    await asyncio.gather(*(apply(jobs, shard_id) for shard_id in ids))


class _ShardAction(Protocol):
    async def __call__(self, jobs: JobManager, shard_id: int) -> None: ...


async def _act(action: Action, jobs: JobManager, shard_id: int) -> None:
    """``action`` on a shard, unless it is past it already (ended, or gone). Through a store
    outage: the run's own state has moved already, and its shards must follow it."""
    act = functools.partial(jobs.act, SHARD_KIND, shard_id, action)
    with contextlib.suppress(InvalidTransition, JobNotFound):
        await until_stored(f"load shard {shard_id} {action}", act)


async def _drain_marks(ctx: RunContext, ids: Sequence[int]) -> dict[int, object]:
    """The running shards, with the drain mark each has before it is halted."""
    shards = await read_shards(ctx, ids)
    return {
        shard_id: shard.progress.get(DRAINED_KEY)
        for shard_id, shard in shards.items()
        if shard.state is JobState.RUNNING
    }


async def _until_drained(ctx: RunContext, marks: dict[int, object]) -> None:
    """Until every shard in ``marks`` has a new drain mark (its last seconds stored where it
    ran), or ``DRAIN_WAIT_S`` (a worker that died never drains)."""
    deadline = asyncio.get_running_loop().time() + DRAIN_WAIT_S
    waiting = dict(marks)
    while waiting and asyncio.get_running_loop().time() < deadline:
        shards = await read_shards(ctx, list(waiting))
        for shard_id, mark in list(waiting.items()):
            shard = shards.get(shard_id)
            if shard is None or shard.progress.get(DRAINED_KEY) != mark:
                del waiting[shard_id]
        if waiting:
            await asyncio.sleep(FOLLOW_EVERY_S)


async def _halted(ctx: RunContext, ids: Sequence[int]) -> list[int]:
    """The shards to start: new ones (all, or those its run's last process did not get to)
    and paused ones. A running shard is left to the process that runs it."""
    shards = await read_shards(ctx, ids)  # one gone: the follower fails the run
    halted = (JobState.CREATED, JobState.PAUSED)
    return [shard_id for shard_id, shard in shards.items() if shard.state in halted]


async def _deleted(jobs: JobManager, shard_id: int) -> None:
    delete = functools.partial(jobs.delete, SHARD_KIND, shard_id)
    with contextlib.suppress(JobNotFound):
        await until_stored(f"load shard {shard_id} delete", delete)
