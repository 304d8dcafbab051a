"""The control plane's executor: here without workers, dispatched with them."""

from __future__ import annotations

import asyncio

import pytest

from latlab.coordination.fleet import WorkerInfo
from latlab.jobs import fleet
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.fleet import FleetExecutor, has_room, has_room_on
from latlab.jobs.runner import Started


class Recorder:
    def __init__(self, fails: bool = False) -> None:
        self.sent: list[tuple[str, int, str]] = []
        self.fails = fails

    async def dispatch(self, kind: str, job_id: int, location: str) -> None:
        if self.fails:
            raise ConnectionError("Redis went away")
        self.sent.append((kind, job_id, location))


def executor_with(
    dispatch: Recorder,
    workers: list[str],
    unclaimed: set[int] | None = None,
    full: set[str] | None = None,
    room_on: set[str] | None = None,
) -> tuple[FleetExecutor, list[int]]:
    """``workers``: the locations of the live workers; ``unclaimed``: the jobs nobody took."""
    ran: list[int] = []
    nobody_took = unclaimed if unclaimed is not None else set()

    async def drive(_kind: str, job_id: int, started: Started) -> None:
        ran.append(job_id)
        started()
        await asyncio.Event().wait()

    def has_workers_at(location: str) -> bool:
        return any(location in ("any", where) for where in workers)

    async def not_taken(_kind: str, job_id: int) -> bool:
        return job_id in nobody_took

    def has_room_at(location: str, _kind: str) -> bool:
        return has_workers_at(location) and location not in (full or set())

    def has_room_on(worker: str, _location: str, _key: tuple[str, int]) -> bool:
        return worker in (room_on or set())

    local = InProcessExecutor()
    executor = FleetExecutor(
        local,
        dispatch.dispatch,
        has_workers_at,
        not_taken,
        0,
        has_room_at=has_room_at,
        has_room_on=has_room_on,
    )
    executor.bind(drive)
    return executor, ran


async def test_without_a_live_worker_a_job_runs_here() -> None:
    sent = Recorder()
    executor, ran = executor_with(sent, workers=[])
    executor.submit("probe", 1)
    await asyncio.sleep(0)
    assert executor.running() == [("probe", 1)]
    assert ran == [1]
    assert sent.sent == []
    await executor.shutdown()
    assert executor.running() == []


async def test_with_a_live_worker_a_job_is_dispatched_not_run_here() -> None:
    sent = Recorder()
    executor, ran = executor_with(sent, workers=["eu-1"])
    await executor.submit("probe", 2)
    assert sent.sent == [("probe", 2, "any")]
    assert ran == []
    assert not executor.is_running("probe", 2)
    await executor.shutdown()


async def test_a_job_already_running_here_stays_here_when_workers_appear() -> None:
    sent, workers = Recorder(), list[str]()
    executor, _ran = executor_with(sent, workers)
    executor.submit("probe", 3)
    workers.append("w1")
    await executor.submit("probe", 3)
    assert sent.sent == []
    assert executor.is_running("probe", 3)
    await executor.cancel("probe", 3)
    assert not executor.is_running("probe", 3)
    await executor.shutdown()


async def test_a_job_that_cannot_be_dispatched_runs_here() -> None:
    executor, ran = executor_with(Recorder(fails=True), workers=["eu-1"])  # not pinned
    await executor.submit("probe", 4)
    assert executor.running() == [("probe", 4)]
    assert ran == [4]
    await executor.cancel_many([("probe", 4)])
    await executor.shutdown()


async def test_a_job_pinned_to_a_location_is_dispatched_even_with_no_worker_up() -> None:
    sent = Recorder()
    executor, ran = executor_with(sent, workers=[])
    await executor.submit("probe", 5, "us-1")
    await executor.submit("probe", 6, "any")  # not pinned: no worker, so here
    assert sent.sent == [("probe", 5, "us-1")]
    assert ran == [6]
    await executor.shutdown()


async def test_a_dispatch_nobody_took_is_sent_again_and_a_taken_one_is_not() -> None:
    sent = Recorder()
    executor, ran = executor_with(sent, workers=["eu-1"], unclaimed={1})
    await executor.submit("probe", 1)
    await executor.submit("probe", 2)
    await executor.resend_unclaimed()
    await executor.settled()
    assert sent.sent == [("probe", 1, "any"), ("probe", 2, "any"), ("probe", 1, "any")]
    assert ran == []
    await executor.shutdown()


async def test_a_dispatch_lost_with_the_last_worker_runs_here() -> None:
    """Found in review: dispatched as the last worker died, nobody ever read it."""
    sent, workers = Recorder(), ["eu-1"]
    executor, ran = executor_with(sent, workers, unclaimed={3})
    await executor.submit("probe", 3)
    workers.clear()
    await executor.resend_unclaimed()
    await asyncio.sleep(0)
    assert ran == [3]
    assert sent.sent == [("probe", 3, "any")]
    await executor.shutdown()


async def test_a_pinned_job_is_never_run_here_and_is_sent_once_a_worker_is_there() -> None:
    """Found in review: a failed dispatch ran a pinned job in the API, probing from the
    wrong place."""
    failing, workers = Recorder(fails=True), list[str]()
    executor, ran = executor_with(failing, workers, unclaimed={4})
    await executor.submit("probe", 4, "us-1")
    await executor.resend_unclaimed()  # no worker in us-1: it keeps waiting
    failing.fails = False
    workers.append("us-1")
    await executor.resend_unclaimed()
    await executor.settled()
    assert ran == []
    assert failing.sent == [("probe", 4, "us-1")]
    await executor.shutdown()


async def test_a_job_queued_behind_busy_workers_is_not_sent_again_until_one_has_room() -> None:
    """Found in review: a job waiting for a free slot was taken for lost and sent again every
    5 s (the stream grew, the log repeated "dispatched but not taken")."""
    sent, busy = Recorder(), {"any"}
    executor, ran = executor_with(sent, workers=["eu-1"], unclaimed={5}, full=busy)
    await executor.submit("probe", 5)
    for _ in range(3):
        await executor.resend_unclaimed()
    await executor.settled()
    assert sent.sent == [("probe", 5, "any")]
    busy.clear()  # a slot freed and the job is still unclaimed: its dispatch was lost
    await executor.resend_unclaimed()
    await executor.settled()
    assert sent.sent == [("probe", 5, "any")] * 2
    assert ran == []
    await executor.shutdown()


def test_room_counts_experiments_and_shards_against_capacity_and_not_bots() -> None:
    workers = [
        WorkerInfo("w1", "eu-1", 1, [("probe", 1), ("bot", 2), ("bot", 3)]),
        WorkerInfo("w2", "us-1", 2, [("load_shard", 4)]),
    ]
    assert not has_room(workers, "eu-1", "probe")  # its one slot runs an experiment
    assert has_room(workers, "eu-1", "bot")
    assert has_room(workers, "any", "load_shard")  # w2 has a second slot
    assert has_room(workers, "us-1", "probe")
    assert not has_room(workers, "ap-1", "bot")  # nobody there


async def test_a_job_queued_past_the_longest_wait_is_sent_again_anyway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: under a steady backlog no worker ever shows room, so a dispatch that
    was really lost would never be sent again."""
    sent = Recorder()
    executor, _ = executor_with(sent, workers=["eu-1"], unclaimed={6}, full={"any"})
    await executor.submit("probe", 6)
    await executor.resend_unclaimed()
    monkeypatch.setattr(fleet, "MAX_QUEUED_S", 0.0)
    await executor.resend_unclaimed()
    await executor.settled()
    assert sent.sent == [("probe", 6, "any")] * 2
    await executor.shutdown()


async def test_a_job_started_again_goes_back_to_its_worker_and_to_any_if_not_taken_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A paused load run's processes wait on the worker that ran it: its resume goes there
    while that worker is alive with room, and to any worker if it does not take it."""
    monkeypatch.setattr(fleet, "PREFERRED_WITHIN_S", 0.0)
    sent = Recorder()
    executor, ran = executor_with(sent, workers=["eu-1"], unclaimed={7}, room_on={"w1"})
    await executor.submit("load_shard", 7, prefer="w1")
    await executor.submit("load_shard", 8, prefer="w2")  # gone, or no room there: any worker
    await executor.resend_unclaimed()
    await executor.settled()
    assert sent.sent == [
        ("load_shard", 7, "@w1"),
        ("load_shard", 8, "any"),
        ("load_shard", 7, "any"),  # w1 did not take it
    ]
    assert ran == []
    await executor.shutdown()


def test_a_workers_room_for_a_job_counts_the_slot_that_job_still_holds_as_free() -> None:
    """A worker's entry is a heartbeat old: right after a pause it still lists the job."""
    workers = [WorkerInfo("w1", "eu-1", 1, [("load_shard", 4)]), WorkerInfo("w2", "us-1", 1)]
    assert has_room_on(workers, "w1", "any", ("load_shard", 4))
    assert has_room_on(workers, "w1", "eu-1", ("load_shard", 4))
    assert not has_room_on(workers, "w1", "any", ("load_shard", 5))  # its slot is taken
    assert not has_room_on(workers, "w1", "us-1", ("load_shard", 4))  # not its location
    assert not has_room_on(workers, "w3", "any", ("load_shard", 4))  # not alive
