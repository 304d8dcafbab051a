"""Load runs as a job kind: exact totals, stored seconds, pause/resume, thresholds, failures."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import ValidationError

from harness import CountingTarget, running_engine, wait_for
from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_progress import RunProgress, remaining_plan
from latlab.jobs.kinds.load_queries import LoadRunQueries
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.jobs.manager import JobManager
from latlab.jobs.state import Action
from latlab.storage import JobRecord, JobState, Store
from load_workers import load_workers


def spec(port: int, **fields: Any) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:{port}/", "connections": 4, **fields}


async def ended(manager: JobManager, store: Store, job_id: int) -> JobRecord:
    async def over() -> bool:
        return (await store.get_job("load", job_id)).state.ended

    await wait_for(over, 30, f"load run {job_id} to end")
    return await store.get_job("load", job_id)


async def rows(store: Store, job_id: int) -> list[dict[str, Any]]:
    page = await LoadRunQueries(store).seconds(job_id, offset=0, limit=1000)
    return page.items


async def test_a_run_of_n_requests_counts_exactly_n_and_stores_its_seconds(store: Store) -> None:
    async with CountingTarget() as target, running_engine(store, [LoadRunner()]) as manager:
        job = await manager.create("load", spec(target.port, requests=3000), start=True)
        done = await ended(manager, store, job.id)
        seconds = await rows(store, job.id)
    assert done.state is JobState.COMPLETED, done.error
    assert done.progress["requests"] == 3000 == target.requests
    assert [row["second"] for row in seconds] == list(range(done.progress["seconds"]))
    assert sum(row["requests"] for row in seconds) == 3000
    figures = await LoadRunQueries(store).figures(done)
    assert (figures.stats["requests"], figures.stats["errors"]) == (3000, 0)
    assert figures.stats["status"]["2xx"] == 3000


async def test_thresholds_are_judged_when_the_run_completes(store: Store) -> None:
    thresholds = ["p99<5s", "errors<1%", "rps>1000000"]
    async with CountingTarget() as target, running_engine(store, [LoadRunner()]) as manager:
        job = await manager.create(
            "load", spec(target.port, requests=500, thresholds=thresholds), start=True
        )
        done = await ended(manager, store, job.id)
    verdicts = done.progress["thresholds"]
    assert [(v["expression"], v["ok"]) for v in verdicts] == [
        ("p99<5s", True),
        ("errors<1%", True),
        ("rps>1000000", False),
    ]
    assert verdicts[1]["value"] == 0.0
    assert done.progress["passed"] is False
    assert done.progress["summary"]["requests"] == 500


async def test_warmup_load_is_sent_but_not_counted(store: Store) -> None:
    async with CountingTarget() as target, running_engine(store, [LoadRunner()]) as manager:
        fields = spec(target.port, requests=300, warmup="0.3s")
        job = await manager.create("load", fields, start=True)
        done = await ended(manager, store, job.id)
    assert done.progress["requests"] == 300
    assert target.requests > 300


async def test_a_side_probe_runs_beside_the_load_and_is_summed_up_apart(store: Store) -> None:
    async with CountingTarget() as target, running_engine(store, [LoadRunner()]) as manager:
        fields = spec(target.port, rate=100, duration="1s", probe="0.05s")
        job = await manager.create("load", fields, start=True)
        done = await ended(manager, store, job.id)
    probe = done.progress["summary"]["probe"]
    assert 15 <= probe["count"] <= 22
    assert probe["errors"] == 0
    assert 0 < probe["p50"] < 100
    assert abs(done.progress["requests"] - 100) <= 2  # the probes are not load


async def test_pause_closes_the_pool_and_resume_counts_on_from_where_it_was(
    store: Store,
) -> None:
    runner = LoadRunner()
    async with CountingTarget() as target, running_engine(store, [runner]) as manager:
        job = await manager.create("load", spec(target.port, requests=1500, rate=500), start=True)

        async def two_seconds() -> bool:
            return int((await store.get_job("load", job.id)).progress.get("seconds", 0)) >= 2

        await wait_for(two_seconds, 20, "two stored seconds")
        [loading] = load_workers(os.getpid())
        paused = await manager.act("load", job.id, Action.PAUSE)
        assert loading not in load_workers(os.getpid())  # closed: its process ended
        sent_when_paused = target.requests
        before = (await store.get_job("load", job.id)).progress

        async def warmed() -> bool:
            return runner.warmth.processes.count == 1

        await wait_for(warmed, 20, "a process started while paused")
        [warm] = load_workers(os.getpid())
        await manager.act("load", job.id, Action.RESUME)
        assert load_workers(os.getpid()) == [warm]  # the resume took it: none started
        assert runner.warmth.processes.count == 0
        done = await ended(manager, store, job.id)
        seconds = await rows(store, job.id)
    assert load_workers(os.getpid()) == []  # none kept after the shutdown
    assert paused.state is JobState.PAUSED
    assert before["seconds"] >= 2
    assert 0 < before["requests"] < 1500
    assert done.state is JobState.COMPLETED, done.error
    assert done.progress["requests"] == 1500 == sum(row["requests"] for row in seconds)
    assert [row["second"] for row in seconds] == list(range(done.progress["seconds"]))
    assert seconds[before["seconds"]]["requests"] > 0  # the resumed stretch numbered on
    assert target.requests > sent_when_paused


async def test_a_target_the_policy_refuses_fails_the_run_before_any_load(store: Store) -> None:
    async with running_engine(store, [LoadRunner()]) as manager:
        job = await manager.create("load", {"url": "http://0.0.0.0:9/"}, start=True)
        done = await ended(manager, store, job.id)
    assert done.state is JobState.FAILED
    assert done.error is not None
    assert done.error.startswith("target not allowed: 0.0.0.0 (")  # no exception class name
    assert done.progress.get("seconds", 0) == 0


async def test_a_target_nothing_answers_at_fails_the_run_at_once(
    store: Store, unused_port: int
) -> None:
    async with running_engine(store, [LoadRunner()]) as manager:
        job = await manager.create("load", spec(unused_port), start=True)
        done = await ended(manager, store, job.id)
    assert done.state is JobState.FAILED
    assert done.error is not None
    assert done.error.startswith("cannot reach ")


def progressed(fields: dict[str, Any], **progress: Any) -> tuple[LoadRunSpec, RunProgress]:
    spec = LoadRunSpec.model_validate({"url": "http://127.0.0.1:1/", **fields})
    job = JobRecord(1, "load", JobState.PAUSED, spec.model_dump(), progress)
    return spec, RunProgress.of(job, spec)


def test_what_is_left_after_a_pause_is_the_rest_of_the_requests() -> None:
    spec, progress = progressed({"requests": 100}, seconds=3, requests=70, connections=8)
    plan = remaining_plan(spec, progress)
    assert plan is not None
    assert (plan.requests, plan.connections) == (30, 8)


def test_what_is_left_of_a_timed_run_is_its_seconds_at_the_changed_rate_without_warmup() -> None:
    fields = {"duration": "5s", "warmup": "1s", "rate": 9}
    spec, progress = progressed(fields, seconds=3, requests=27, elapsed_s=3.0, rate=30)
    plan = remaining_plan(spec, progress)
    assert plan is not None
    assert (plan.duration_s, plan.rate, plan.warmup_s) == (2.0, 30, 0.0)
    progress.elapsed_s = 5.0
    assert remaining_plan(spec, progress) is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"requests": 10, "duration": "1s"}, "duration"),
        ({"duration": "0s"}, "duration"),
        ({"connections": 0}, "connections"),
        ({"url": "ftp://127.0.0.1/"}, "url"),
        ({"url": "http://127.1/"}, "url"),
        ({"method": "get"}, "method"),
        ({"body": "x"}, "body"),
        ({"expect_status": "2xy"}, "expect_status"),
        ({"thresholds": ["p99<10"]}, "thresholds"),
        ({"timeout": "1d"}, "timeout"),
        ({"duration": True}, "duration"),
        ({"timeout": float("nan")}, "timeout"),
        ({"workers": "2"}, "workers"),
        ({"insecure": 1}, "insecure"),
    ],
)
def test_a_spec_the_engine_would_refuse_names_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LoadRunSpec.model_validate({"url": "http://127.0.0.1:1/", **fields})
    assert caught.value.errors()[0]["loc"][0] == field


def test_numbers_may_be_ints_or_floats_and_durations_texts_the_cli_reads() -> None:
    fields = {"duration": 3, "rate": 100, "timeout": 2.5, "probe": "0.2s", "warmup": "500ms"}
    spec = LoadRunSpec.model_validate({"url": "http://127.0.0.1:1/", **fields})
    assert (spec.duration_s(), spec.rate, spec.warmup_s(), spec.probe_interval_s()) == (
        3.0,
        100.0,
        0.5,
        0.2,
    )
