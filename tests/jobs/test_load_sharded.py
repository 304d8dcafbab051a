"""Sharded load runs on one engine (no workers: the shards run here, each its own pool):
totals divided exactly, stats merged bucket for bucket, and the run's controls reach them."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import ValidationError

from harness import CountingTarget, running_engine, wait_for
from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_remote import ChangeOutOfBounds, retune_sharded
from latlab.jobs.kinds.load_shard import LoadShardRunner
from latlab.jobs.kinds.load_sharded import SHARD_KIND, ShardedRuns, ShardSpec, shard_ids, shard_of
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.jobs.manager import JobManager
from latlab.jobs.state import Action
from latlab.measure.load.seconds import SecondStats
from latlab.storage import JobNotFound, JobRecord, JobState, Store, StoreUnavailable
from latlab.storage.memory import MemoryStore
from latlab.storage.records import TOTAL_BUCKET, ProgressUpdate


def spec(port: int, **fields: Any) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:{port}/", "connections": 4, "shards": 2, **fields}


@asynccontextmanager
async def sharding_engine(store: Store) -> AsyncIterator[JobManager]:
    sharded = ShardedRuns()
    async with running_engine(store, [LoadRunner(None, sharded), LoadShardRunner()]) as jobs:
        sharded.bind(jobs)
        yield jobs


async def ended(store: Store, job_id: int) -> JobRecord:
    async def over() -> bool:
        return (await store.get_job("load", job_id)).state.ended

    await wait_for(over, 30, f"load run {job_id} to end")
    return await store.get_job("load", job_id)


async def merged_a_second(store: Store, job_id: int) -> None:
    async def merged() -> bool:
        return int((await store.get_job("load", job_id)).progress.get("seconds", 0)) >= 1

    await wait_for(merged, 30, "a merged second")


async def seconds_of(store: Store, kind: str, job_id: int) -> dict[int, SecondStats]:
    stored = await store.histograms.read(kind, job_id, TOTAL_BUCKET, 10_000)
    return {n: SecondStats.from_payload(payload) for n, payload in stored.items()}


async def test_requests_are_divided_exactly_and_the_merge_equals_the_shards_bucket_for_bucket(
    store: Store,
) -> None:
    async with CountingTarget() as target, sharding_engine(store) as jobs:
        job = await jobs.create("load", spec(target.port, requests=3001), start=True)
        done = await ended(store, job.id)
    assert done.state is JobState.COMPLETED, done.error
    assert done.progress["requests"] == 3001 == target.requests
    run = await seconds_of(store, "load", job.id)
    shards = [await seconds_of(store, SHARD_KIND, i) for i in done.progress["shards"]]
    assert [s[TOTAL_BUCKET].requests for s in shards] == [1501, 1500]
    for n, second in run.items():
        parts = [s[n] for s in shards if n in s]
        expected = sum((Counter(p.service.bucket_counts()) for p in parts), Counter[int]())
        assert Counter(second.service.bucket_counts()) == expected, f"second {n}"
        assert second.requests == sum(p.requests for p in parts)
    assert sorted(n for n in run if n >= 0) == list(range(done.progress["seconds"]))


async def test_thresholds_are_judged_on_the_merged_stats(store: Store) -> None:
    thresholds = ["p99<5s", "rps>1000000"]
    async with CountingTarget() as target, sharding_engine(store) as jobs:
        fields = spec(target.port, requests=400, thresholds=thresholds)
        job = await jobs.create("load", fields, start=True)
        done = await ended(store, job.id)
    assert [(v["expression"], v["ok"]) for v in done.progress["thresholds"]] == [
        ("p99<5s", True),
        ("rps>1000000", False),
    ]
    assert done.progress["summary"]["requests"] == 400
    shard = await store.get_job(SHARD_KIND, done.progress["shards"][0])
    assert shard.progress["thresholds"] == []  # judged once, on the merge


async def test_pause_pauses_the_shards_and_resume_finishes_the_exact_count(store: Store) -> None:
    async with CountingTarget(delay_s=0.01) as target, sharding_engine(store) as jobs:
        job = await jobs.create("load", spec(target.port, requests=600), start=True)

        await merged_a_second(store, job.id)
        paused = await jobs.act("load", job.id, Action.PAUSE)
        ids = paused.progress["shards"]
        states = [(await store.get_job(SHARD_KIND, i)).state for i in ids]
        await jobs.act("load", job.id, Action.RESUME)
        done = await ended(store, job.id)
    assert states == [JobState.PAUSED, JobState.PAUSED]
    assert done.state is JobState.COMPLETED, done.error
    # Answers in flight at the pause reached the target but were not counted, as in one pool.
    assert done.progress["requests"] == 600 <= target.requests
    run = await seconds_of(store, "load", job.id)
    assert sum(run[n].requests for n in range(done.progress["seconds"])) == 600


async def test_stop_stops_the_shards_and_keeps_what_they_measured(store: Store) -> None:
    async with CountingTarget(delay_s=0.01) as target, sharding_engine(store) as jobs:
        job = await jobs.create("load", spec(target.port, duration="20s"), start=True)

        await merged_a_second(store, job.id)
        stopped = await jobs.act("load", job.id, Action.STOP)
        shards = [await store.get_job(SHARD_KIND, i) for i in stopped.progress["shards"]]
    assert [shard.state for shard in shards] == [JobState.STOPPED, JobState.STOPPED]
    assert stopped.progress["summary"]["requests"] == stopped.progress["requests"] > 0
    assert stopped.progress["requests"] == sum(s.progress["requests"] for s in shards)


async def test_deleting_a_run_deletes_its_shards(store: Store) -> None:
    async with CountingTarget() as target, sharding_engine(store) as jobs:
        job = await jobs.create("load", spec(target.port, requests=100), start=True)
        done = await ended(store, job.id)
        await jobs.delete("load", job.id)
        for shard_id in done.progress["shards"]:
            with pytest.raises(JobNotFound):
                await store.get_job(SHARD_KIND, shard_id)


async def test_a_failed_shard_fails_the_run_naming_it(store: Store) -> None:
    async with CountingTarget() as target, sharding_engine(store) as jobs:
        port = target.port
    async with sharding_engine(store) as jobs:  # the target has gone: nothing answers there
        job = await jobs.create("load", spec(port, requests=100), start=True)
        done = await ended(store, job.id)
    assert done.state is JobState.FAILED
    assert str(done.error).startswith("shard 1 of 2 failed: ")


async def test_a_shard_whose_run_is_gone_fails_with_that_reason(store: Store) -> None:
    async with sharding_engine(store) as jobs:
        shard = ShardSpec(run=999, index=0).model_dump()
        made = await jobs.create(SHARD_KIND, shard, start=True)

        async def failed() -> bool:
            return (await store.get_job(SHARD_KIND, made.id)).state is JobState.FAILED

        await wait_for(failed, 10, "the orphan shard to fail")
    assert (await store.get_job(SHARD_KIND, made.id)).error == "its load run 999 is gone"


def test_each_shard_gets_its_share_and_the_first_runs_the_side_probe() -> None:
    run = LoadRunSpec.model_validate(
        {"url": "http://127.0.0.1:1/", "connections": 10, "requests": 11, "rate": 90.0}
        | {"shards": 3, "probe": "0.5s", "thresholds": ["p99<1s"]}
    )
    parts = [shard_of(run, index) for index in range(3)]
    assert [(p.connections, p.requests, p.rate) for p in parts] == [
        (4, 4, 30.0),
        (3, 4, 30.0),
        (3, 3, 30.0),
    ]
    assert [p.probe for p in parts] == ["0.5s", None, None]
    assert all(p.thresholds == [] and p.shard_count == 1 for p in parts)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"shards": 5, "connections": 4}, "shards", "connections must be at least the run's 5"),
        ({"shards": 3, "requests": 2}, "shards", "requests must be at least the run's 3"),
        ({"shards": 3, "locations": ["a", "b"]}, "shards", "equal the 2 locations"),
        ({"locations": ["eu:1"]}, "locations", "pattern"),
        ({"locations": []}, "locations", "at least 1"),
        ({"shards": 0}, "shards", "greater than or equal to 1"),
        ({"shards": 65}, "shards", "less than or equal to 64"),
        # Found in review: accepted, then every shard's plan refused its share of the rate.
        ({"shards": 64, "connections": 64, "rate": 0.01}, "rate", "0.001 requests/s a shard"),
    ],
)
def test_a_split_that_cannot_run_names_its_field(
    fields: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        LoadRunSpec.model_validate({"url": "http://127.0.0.1:1/", **fields})
    errors = refused.value.errors()
    assert [error["loc"][0] for error in errors] == [field]
    assert message in errors[0]["msg"]


async def test_a_process_without_the_manager_bound_fails_a_sharded_run(store: Store) -> None:
    unbound = LoadRunner(None, ShardedRuns())
    async with CountingTarget() as target, running_engine(store, [unbound]) as jobs:
        job = await jobs.create("load", spec(target.port, requests=10), start=True)
        done = await ended(store, job.id)
    assert done.state is JobState.FAILED
    assert done.error == "sharded load runs are not available in this process"


async def test_a_single_location_sends_from_a_shard_there_not_from_here(store: Store) -> None:
    """Found in review: ``locations: ["eu-1"]`` ran the load in the control plane process."""
    async with CountingTarget() as target, sharding_engine(store) as jobs:
        fields = {
            "url": f"http://127.0.0.1:{target.port}/",
            "requests": 300,
            "locations": ["lab-1"],
        }
        job = await jobs.create("load", fields, start=True)
        done = await ended(store, job.id)
    (shard_id,) = done.progress["shards"]
    shard = await store.get_job(SHARD_KIND, shard_id)
    assert (shard.spec["location"], shard.progress["requests"]) == ("lab-1", 300)
    assert done.progress["requests"] == 300 == target.requests


async def test_a_change_goes_to_the_running_shards_only(store: Store) -> None:
    """Found in review: a shard that had ended (here: paused) made the whole change a 409,
    after the other shards had taken it."""
    runner = LoadShardRunner()
    sharded = ShardedRuns()
    async with (
        CountingTarget() as target,
        running_engine(store, [LoadRunner(None, sharded), runner]) as jobs,
    ):
        sharded.bind(jobs)
        fields = spec(target.port, rate=40.0, duration="20s")
        job = await jobs.create("load", fields, start=True)

        async def both_sending() -> bool:
            return all(
                runner.workers_running(i) for i in shard_ids(await store.get_job("load", job.id))
            )

        await wait_for(both_sending, 30, "both shards sending")
        first, second_shard = shard_ids(await store.get_job("load", job.id))
        await jobs.act(SHARD_KIND, first, Action.PAUSE)
        run = await store.get_job("load", job.id)
        values = await retune_sharded(runner, None, store, run, rate=90.0, connections=None)
        changed = await store.get_job(SHARD_KIND, second_shard)
        await jobs.act("load", job.id, Action.STOP)
    assert changed.progress["rate"] == 90.0
    assert values["rate"] == 90.0  # what the run sends now: the paused shard sends nothing


async def test_connections_are_refused_below_one_for_each_running_process(store: Store) -> None:
    """Found in review: 4 connections for shards running 3 and 2 processes was accepted, and
    the process left without a connection never sent its share: the run never ended."""
    fields = {"url": "http://127.0.0.1:9/", "workers": 4, "connections": 5, "requests": 1500}
    (run,) = await store.create_jobs("load", [{**fields, "shards": 2}], state=JobState.RUNNING)
    specs = [ShardSpec(run=run.id, index=index).model_dump() for index in range(2)]
    shards = await store.create_jobs(SHARD_KIND, specs, state=JobState.RUNNING)
    for shard, connections in zip(shards, (3, 2), strict=True):
        await store.checkpoint(
            [], [ProgressUpdate(SHARD_KIND, shard.id, {"connections": connections})]
        )
    ids = {"shards": [shard.id for shard in shards]}
    await store.checkpoint([], [ProgressUpdate("load", run.id, ids)])
    run = await store.get_job("load", run.id)
    with pytest.raises(ChangeOutOfBounds) as refused:
        await retune_sharded(LoadShardRunner(), None, store, run, rate=None, connections=4)
    assert (refused.value.field, str(refused.value).split(":")[0]) == (
        "connections",
        "connections must be at least 5",
    )


async def test_shards_an_earlier_start_created_but_never_recorded_are_taken_not_made_again(
    store: Store,
) -> None:
    """Found in review: a process that died between creating a run's shards and recording
    their ids left ``created`` shard jobs that nothing would ever list or delete."""
    async with CountingTarget() as target, sharding_engine(store) as jobs:
        run = await jobs.create("load", spec(target.port, requests=200))
        left = await store.create_jobs(
            SHARD_KIND, [ShardSpec(run=run.id, index=i).model_dump() for i in range(2)]
        )
        await jobs.act("load", run.id, Action.START)
        done = await ended(store, run.id)
        every_shard = await store.list_jobs(SHARD_KIND)
    assert done.state is JobState.COMPLETED, done.error
    assert done.progress["shards"] == [shard.id for shard in left]
    assert every_shard.total == 2
    assert done.progress["requests"] == 200 == target.requests


class ShardPauseFailsOnce(MemoryStore):
    """The store away for one write: the first pause of a shard (a store outage's seam)."""

    failed = False

    async def set_state(self, kind: str, job_id: int, state: JobState, **kwargs: Any) -> JobRecord:
        if kind == SHARD_KIND and state is JobState.PAUSED and not self.failed:
            self.failed = True
            raise StoreUnavailable("the store is away for a moment")
        return await super().set_state(kind, job_id, state, **kwargs)


async def test_a_store_outage_in_the_pause_of_the_shards_does_not_leave_them_sending() -> None:
    """Found in review: the run had moved to paused when its shards' pause met the outage;
    the follower was started again with the run's old record and the shards went on."""
    store = ShardPauseFailsOnce()
    async with CountingTarget(delay_s=0.01) as target, sharding_engine(store) as jobs:
        job = await jobs.create("load", spec(target.port, duration="20s"), start=True)

        await merged_a_second(store, job.id)
        paused = await jobs.act("load", job.id, Action.PAUSE)
        shards = [await store.get_job(SHARD_KIND, i) for i in paused.progress["shards"]]
        following = jobs.running_here()
        await jobs.act("load", job.id, Action.STOP)
    assert store.failed
    assert paused.state is JobState.PAUSED
    assert [shard.state for shard in shards] == [JobState.PAUSED, JobState.PAUSED]
    assert ("load", job.id) not in following
