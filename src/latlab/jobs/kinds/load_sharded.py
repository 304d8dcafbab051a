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
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from latlab.jobs.driver import JobFailed
from latlab.jobs.kinds.children import Parents
from latlab.jobs.kinds.load_follow import (
    SHARD_KIND,
    SHARDS,
    ShardFailed,
    ShardFollower,
)
from latlab.jobs.kinds.load_spec import MAX_SHARDS, LoadRunSpec
from latlab.jobs.kinds.load_stats import StoredTotals, final_progress
from latlab.jobs.kinds.spec_checks import location_field
from latlab.jobs.runner import RunContext, Started
from latlab.jobs.state import Action
from latlab.jobs.supervise import until_stored
from latlab.measure.load.plan import shares
from latlab.storage import JobRecord
from latlab.storage.records import ProgressUpdate

if TYPE_CHECKING:  # the manager runs the kinds: theirs to be handed it, not to import it
    pass

__all__ = ["SHARD_KIND", "ShardSpec", "ShardedRuns", "shard_of"]

FOLLOW_EVERY_S = 0.1  # how often a run reads its shards' progress


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


shard_ids = SHARDS.ids


def _shard_specs(job: JobRecord, spec: LoadRunSpec) -> list[dict[str, Any]]:
    locations: list[str | None] = [*spec.locations] if spec.locations else []
    locations += [None] * (spec.shard_count - len(locations))
    return [
        ShardSpec(run=job.id, index=index, location=location).model_dump()
        for index, location in enumerate(locations)
    ]


class ShardedRuns(Parents):
    """Runs, pauses and stops sharded runs."""

    noun = "sharded load runs"

    async def run(
        self, job: JobRecord, spec: LoadRunSpec, ctx: RunContext, started: Started
    ) -> None:
        jobs = self._bound()
        ids = await SHARDS.made(job, ctx, jobs, _shard_specs(job, spec))
        await SHARDS.act(jobs, await SHARDS.halted(ctx, ids), Action.START)
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
            await SHARDS.act(jobs, ids, Action.STOP)
            raise JobFailed(str(failed)) from None
        values = {**follower.progress, **final_progress(spec, follower.summary())}
        update = ProgressUpdate(job.kind, job.id, values, follower.owner)
        await until_stored(f"load run {job.id}", functools.partial(ctx.writer.write, [], [update]))

    async def paused(self, job: JobRecord) -> None:
        await SHARDS.act(self._bound(), shard_ids(job), Action.PAUSE)

    async def stopped(
        self, job: JobRecord, spec: LoadRunSpec, ctx: RunContext, *, ran_here: bool
    ) -> dict[str, Any]:
        """Stop the shards, wait (bounded) for each to store its last seconds, then keep
        the merge of everything they stored. A run followed by another process is summed up
        as it stored it: that follower may still be writing until it is told to halt."""
        ids = shard_ids(job)
        await SHARDS.stop(self._bound(), ctx, ids)
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

    async def deleting(self, job: JobRecord, ctx: RunContext) -> None:
        """Before the run goes: its shards stop (their last seconds stored) and go too."""
        await SHARDS.stop_and_delete(self._bound(), ctx, job)
