"""A sharded run's follower on a real store: what it merges and what it never overwrites.

The shards' seconds are written here as a shard's checkpoint writes them; the follower is
the one a control plane process runs, with a Redis coordinator when it says ``shared``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from latlab.coordination import Coordinator, LocalCoordinator
from latlab.coordination.redis import RedisCoordinator
from latlab.jobs.clock import SystemClock
from latlab.jobs.events import Events
from latlab.jobs.kinds.load_follow import SHARD_KIND, ShardFollower
from latlab.jobs.kinds.load_sharded import ShardSpec
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.jobs.kinds.load_stats import StoredTotals, second_payload
from latlab.jobs.runner import RunContext
from latlab.measure.client import ProbeClient
from latlab.measure.load.seconds import SecondStats
from latlab.storage import HistogramUpdate, JobRecord, JobState, Store
from latlab.storage.records import TOTAL_BUCKET, ProgressUpdate
from latlab.storage.writer import BatchWriter
from services import require_redis

SPEC = {"url": "http://127.0.0.1:9/", "connections": 4, "requests": 1000, "shards": 2}


@asynccontextmanager
async def context(store: Store, coordinator: Coordinator) -> AsyncIterator[RunContext]:
    async with BatchWriter(store, delay_s=0) as writer:
        try:
            yield RunContext(store, writer, SystemClock(), ProbeClient(), coordinator, Events())
        finally:
            await coordinator.close()


def second(n: int, requests: int) -> SecondStats:
    stats = SecondStats(n)
    for index in range(requests):
        stats.service.record(1.0 + index % 7)
    return stats


async def run_with_shards(store: Store, progress: dict[str, Any]) -> tuple[JobRecord, list[int]]:
    (run,) = await store.create_jobs("load", [SPEC], state=JobState.RUNNING)
    specs = [ShardSpec(run=run.id, index=index).model_dump() for index in range(2)]
    shards = await store.create_jobs(SHARD_KIND, specs, state=JobState.RUNNING)
    ids = [shard.id for shard in shards]
    await store.checkpoint([], [ProgressUpdate("load", run.id, {**progress, "shards": ids})])
    return await store.get_job("load", run.id), ids


async def store_seconds(
    store: Store, shard_id: int, seconds: list[SecondStats], counted: int
) -> None:
    """A shard's seconds, and its progress saying ``counted`` of them are stored."""
    histograms = [
        HistogramUpdate(SHARD_KIND, shard_id, s.second, second_payload(s)) for s in seconds
    ]
    progress = ProgressUpdate(SHARD_KIND, shard_id, {"seconds": counted, "connections": 2})
    await store.checkpoint([], [progress], histograms)


async def follower_of(run: JobRecord, ctx: RunContext, ids: list[int]) -> ShardFollower:
    spec = LoadRunSpec.model_validate(run.spec)
    return ShardFollower(run, spec, ctx, ids, await StoredTotals.read(ctx.store, run, spec))


async def test_a_follower_never_writes_back_the_owner_it_was_read_with(store: Store) -> None:
    """Found in review: adopted after its process died, the run's follower copied the dead
    owner back into the checkpoint; every later write failed the fence and the run hung."""
    coordinator = await RedisCoordinator.open(require_redis(), f"t-{secrets.token_hex(4)}")
    async with context(store, coordinator) as ctx:
        stale, ids = await run_with_shards(store, {"fleet": "dead-owner"})
        claim = ProgressUpdate("load", stale.id, {"fleet": coordinator.owner_id})
        await store.checkpoint([], [claim])  # the driver's claim, after the record was read
        follower = await follower_of(stale, ctx, ids)
        for shard_id in ids:
            await store_seconds(store, shard_id, [second(0, 10)], counted=1)
        await follower.step()
        await ctx.writer.flush()
        for shard_id in ids:
            await store_seconds(store, shard_id, [second(1, 5)], counted=2)
        await follower.step()
        await ctx.writer.flush()
        run = await store.get_job("load", stale.id)
    assert run.progress["fleet"] == coordinator.owner_id
    assert (run.progress["seconds"], run.progress["requests"]) == (2, 30)


async def test_a_second_whose_histogram_is_not_stored_yet_is_merged_later(store: Store) -> None:
    """Found in review: MongoDB stores a checkpoint's progress before its histograms, so a
    shard may count a second not readable yet; it was skipped for good."""
    async with context(store, LocalCoordinator()) as ctx:
        run, ids = await run_with_shards(store, {})
        follower = await follower_of(run, ctx, ids)
        await store_seconds(store, ids[0], [second(0, 10), second(1, 10)], counted=2)
        await store_seconds(store, ids[1], [second(0, 10)], counted=2)  # second 1: not yet
        await follower.step()
        await ctx.writer.flush()
        first = (await store.get_job("load", run.id)).progress
        await store_seconds(store, ids[1], [second(1, 10)], counted=2)
        await follower.step()
        await ctx.writer.flush()
        then = (await store.get_job("load", run.id)).progress
    assert (first["seconds"], first["requests"]) == (1, 20)
    assert (then["seconds"], then["requests"]) == (2, 40)
    total = await store.histograms.read("load", run.id, TOTAL_BUCKET, TOTAL_BUCKET)
    assert SecondStats.from_payload(total[TOTAL_BUCKET]).requests == 40
