"""Experiments at several locations on one engine (no workers: each series runs here, a job
of its own): a series per location, results keyed by location and seq, stats per location
and merged, and the experiment's controls reaching its series."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import ValidationError

from conftest import STORE_KINDS
from harness import CountingTarget, running_engine, wait_for
from latlab.exporters.base import ProbeTags, SinkBase, StateChange
from latlab.jobs.events import Events
from latlab.jobs.feeds import READY
from latlab.jobs.kinds.probe_sites import (
    SITE_KIND,
    SITES,
    ExperimentRunner,
    ExperimentSites,
    SiteRunner,
)
from latlab.jobs.kinds.probe_spec import ProbeLimits, ProbeSpec
from latlab.jobs.live import LiveHub
from latlab.jobs.manager import JobManager
from latlab.jobs.queries import BadQuery, ExperimentQueries
from latlab.jobs.state import Action
from latlab.measure.policy import TargetPolicy
from latlab.storage import JobRecord, JobState, ProbeResult, SiteResult, Store
from latlab.storage.records import ProgressUpdate

LOCATIONS = ["eu-1", "us-1"]


def spec(port: int, **fields: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "path": "/", "interval_s": 0.01, **fields}


class Recorded(SinkBase):
    def __init__(self) -> None:
        self.probed_as: list[tuple[int, str, int, str | None]] = []

    def probed(self, experiment_id: int, tags: ProbeTags, results: Any) -> None:
        for result in results:
            where = getattr(result, "location", None)
            self.probed_as.append((experiment_id, tags.location, result.job_id, where))


@asynccontextmanager
async def sites_engine(store: Store, events: Events | None = None) -> AsyncIterator[JobManager]:
    sites = ExperimentSites()
    runners = [ExperimentRunner(5, sites), SiteRunner(5)]
    async with running_engine(store, runners, events=events) as jobs:  # type: ignore[arg-type]
        sites.bind(jobs)
        yield jobs


async def ended(store: Store, job_id: int) -> JobRecord:
    async def over() -> bool:
        return (await store.get_job("probe", job_id)).state.ended

    await wait_for(over, 30, f"experiment {job_id} to end")
    return await store.get_job("probe", job_id)


@pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
async def test_each_location_gets_a_series_of_count_results_keyed_by_location_and_seq(
    store: Store,
) -> None:
    recorded = Recorded()
    events = Events([recorded])
    async with CountingTarget() as target, sites_engine(store, events) as jobs:
        job = await jobs.create("probe", spec(target.port, count=7, locations=LOCATIONS))
        await jobs.act("probe", job.id, Action.START)
        done = await ended(store, job.id)
    assert done.state is JobState.COMPLETED, done.error
    assert done.progress["done"] == 14 == target.requests
    assert done.progress["by_location"] == {"eu-1": 7, "us-1": 7}
    for site_id, location in zip(SITES.ids(done), LOCATIONS, strict=True):
        site = await store.get_job(SITE_KIND, site_id)
        assert (site.state, site.spec["location"]) == (JobState.COMPLETED, location)
        results = await store.site_results.list(site_id)
        assert [(r.location, r.seq) for r in results] == [(location, seq) for seq in range(7)]
    assert await store.probe_results.count(job.id) == 0  # the experiment probes nothing itself
    # Sinks hear them as the experiment's, each with its location (results and tags).
    assert {(e, t, i, w) for e, t, i, w in recorded.probed_as} == {
        (job.id, "eu-1", job.id, "eu-1"),
        (job.id, "us-1", job.id, "us-1"),
    }
    assert len(recorded.probed_as) == 14


async def completed_at_every_location(store: Store, count: int) -> JobRecord:
    async with CountingTarget() as target, sites_engine(store) as jobs:
        job = await jobs.create("probe", spec(target.port, count=count, locations=LOCATIONS))
        await jobs.act("probe", job.id, Action.START)
        return await ended(store, job.id)


async def test_results_page_location_after_location_and_stats_merge_exactly(
    store: Store,
) -> None:
    job = await completed_at_every_location(store, 5)
    queries = ExperimentQueries(store)
    page = await queries.results(job.id, offset=3, limit=4)
    assert page.total == 10
    assert [(r.location, r.seq) for r in page.items if isinstance(r, SiteResult)] == [
        ("eu-1", 3),
        ("eu-1", 4),
        ("us-1", 0),
        ("us-1", 1),
    ]
    only_us = await queries.results(job.id, offset=0, limit=100, location="us-1")
    assert (only_us.total, {r.location for r in only_us.items}) == (5, {"us-1"})  # type: ignore[attr-defined]
    merged, by_location = await queries.stats(job.id)
    assert (merged.count, sorted(by_location)) == (10, LOCATIONS)
    assert [stats.count for stats in by_location.values()] == [5, 5]
    assert merged.max_ms == max(stats.max_ms or 0 for stats in by_location.values())
    us_only, _ = await queries.stats(job.id, location="us-1")
    assert us_only == by_location["us-1"]
    with pytest.raises(BadQuery, match="no location 'ap-1'"):
        await queries.results(job.id, offset=0, limit=1, location="ap-1")


async def test_a_location_filter_on_an_experiment_without_locations_is_refused(
    store: Store,
) -> None:
    job = await store.create_job("probe", spec(1, count=1))
    with pytest.raises(BadQuery, match="it has none"):
        await ExperimentQueries(store).stats(job.id, location="eu-1")


async def test_pause_resume_and_stop_reach_every_series(store: Store) -> None:
    async with CountingTarget() as target, sites_engine(store) as jobs:
        fields = spec(target.port, count=100_000, interval_s=0.01, locations=LOCATIONS)
        job = await jobs.create("probe", fields, start=True)

        async def probing() -> bool:
            return int((await store.get_job("probe", job.id)).progress.get("done", 0)) >= 4

        await wait_for(probing, 20, "both series to probe")
        await jobs.act("probe", job.id, Action.PAUSE)
        ids = SITES.ids(await store.get_job("probe", job.id))
        assert {(await store.get_job(SITE_KIND, i)).state for i in ids} == {JobState.PAUSED}
        await jobs.act("probe", job.id, Action.RESUME)
        assert {(await store.get_job(SITE_KIND, i)).state for i in ids} == {JobState.RUNNING}
        stopped = await jobs.act("probe", job.id, Action.STOP)
        counts = [await store.site_results.count(i) for i in ids]
    assert {(await store.get_job(SITE_KIND, i)).state for i in ids} == {JobState.STOPPED}
    assert stopped.progress["done"] == sum(counts)
    assert stopped.progress["by_location"] == dict(zip(LOCATIONS, counts, strict=True))


async def test_deleting_the_experiment_deletes_its_series_and_their_results(store: Store) -> None:
    async with CountingTarget() as target, sites_engine(store) as jobs:
        job = await jobs.create("probe", spec(target.port, count=3, locations=LOCATIONS))
        await jobs.act("probe", job.id, Action.START)
        ids = SITES.ids(await ended(store, job.id))
        await jobs.delete("probe", job.id)
    assert (await store.list_jobs(SITE_KIND)).total == 0
    assert [await store.site_results.count(i) for i in ids] == [0, 0]


async def test_a_series_that_fails_fails_the_experiment_and_stops_the_others(
    store: Store,
) -> None:
    async with CountingTarget() as target, sites_engine(store) as jobs:
        fields = spec(target.port, count=100_000, locations=LOCATIONS)
        job = await jobs.create("probe", fields, start=True)

        async def made() -> bool:
            return len(SITES.ids(await store.get_job("probe", job.id))) == 2

        await wait_for(made, 20, "the series")
        first, second = SITES.ids(await store.get_job("probe", job.id))
        await jobs.act(SITE_KIND, first, Action.STOP)
        done = await ended(store, job.id)
    assert (done.state, done.error) == (JobState.FAILED, "the series at eu-1 stopped: stopped")
    assert (await store.get_job(SITE_KIND, second)).state is JobState.STOPPED


def limits(workers: bool) -> ProbeLimits:
    return ProbeLimits(0.001, 1000, TargetPolicy(), workers=workers)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"locations": ["eu-1", "eu-1"]}, "must not repeat"),
        ({"locations": ["eu-1"], "location": "us-1"}, "not both"),
        ({"locations": ["eu 1"]}, "should match pattern"),
        ({"locations": []}, "at least 1 item"),
        ({"locations": ["a", "b"], "count": 600}, "count times locations must be at most 1000"),
    ],
)
def test_bad_locations_are_refused_with_the_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProbeSpec.validate_new(spec(80, **fields), limits(workers=True))


def test_locations_need_workers() -> None:
    with pytest.raises(ValidationError, match="locations need workers"):
        ProbeSpec.validate_new(spec(80, locations=["eu-1"]), limits(workers=False))


async def test_a_feed_of_one_location_replays_and_goes_live_a_feed_of_all_cannot_resume(
    store: Store,
) -> None:
    hub = LiveHub()
    async with CountingTarget() as target, sites_engine(store, Events([hub])) as jobs:
        job = await jobs.create("probe", spec(target.port, count=40, locations=LOCATIONS))
        queries = ExperimentQueries(store)
        with pytest.raises(BadQuery, match="resuming needs"):
            await queries.feed(hub, job.id, -1)
        everything = await queries.feed(hub, job.id, None)
        assert everything is not None
        assert not everything.numbered
        assert await anext(everything.events) == [READY]  # subscribed
        await jobs.act("probe", job.id, Action.START)

        async def some_stored() -> bool:
            by_location = (await store.get_job("probe", job.id)).progress.get("by_location", {})
            return int(by_location.get("us-1", 0)) >= 5

        await wait_for(some_stored, 20, "five results at us-1")
        us = await queries.feed(hub, job.id, -1, location="us-1")
        assert us is not None
        assert us.numbered
        got = [e async for batch in us.events for e in batch if isinstance(e, ProbeResult)]
        seen = []
        async for batch in everything.events:
            seen += [e for e in batch if isinstance(e, ProbeResult)]
            if any(isinstance(e, StateChange) and e.state.ended for e in batch):
                break
    assert [(r.location, r.seq) for r in got] == [("us-1", seq) for seq in range(40)]  # type: ignore[attr-defined]
    assert sorted((r.location, r.seq) for r in seen) == [  # type: ignore[attr-defined]
        (where, seq) for where in LOCATIONS for seq in range(40)
    ]
    assert {r.job_id for r in seen} == {job.id}  # results of the experiment, not its series'


async def test_a_series_its_experiment_does_not_list_fails_and_never_probes(
    store: Store,
) -> None:
    """Found in review: a control plane that lost the experiment (frozen, then woken) made
    and started series of its own, unlisted, which probed the target a second time."""
    async with CountingTarget() as target, sites_engine(store) as jobs:
        fields = spec(target.port, count=3, locations=LOCATIONS)
        experiment = await store.create_job("probe", fields)
        await store.checkpoint([], [ProgressUpdate("probe", experiment.id, {"sites": [90, 91]})])
        stray = await jobs.create(
            SITE_KIND, {"experiment": experiment.id, "index": 0, "location": "eu-1"}, start=True
        )

        async def failed() -> bool:
            return (await store.get_job(SITE_KIND, stray.id)).state is JobState.FAILED

        await wait_for(failed, 10, "the stray series to fail")
        error = (await store.get_job(SITE_KIND, stray.id)).error
    assert error == f"series {stray.id} is not one of probe {experiment.id}'s"
    assert target.requests == 0


async def test_the_most_recent_results_come_from_every_location_by_start_time(
    store: Store,
) -> None:
    done = await completed_at_every_location(store, 5)
    every = [r for site in SITES.ids(done) for r in await store.site_results.list(site)]
    newest = sorted(every, key=lambda result: result.timestamp)[-4:]
    recent = await ExperimentQueries(store).recent(done, 4)
    assert recent == newest
    assert len(await ExperimentQueries(store).recent(done, 100)) == 10
