"""The control plane's executor: here without workers, dispatched with them."""

from __future__ import annotations

import asyncio

from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.fleet import FleetExecutor
from latlab.jobs.runner import Started


class Recorder:
    def __init__(self, fails: bool = False) -> None:
        self.sent: list[tuple[str, int, str]] = []
        self.fails = fails

    async def dispatch(self, kind: str, job_id: int, location: str) -> None:
        if self.fails:
            raise ConnectionError("Redis went away")
        self.sent.append((kind, job_id, location))


def executor_with(dispatch: Recorder, workers: list[str]) -> tuple[FleetExecutor, list[int]]:
    ran: list[int] = []

    async def drive(_kind: str, job_id: int, started: Started) -> None:
        ran.append(job_id)
        started()
        await asyncio.Event().wait()

    local = InProcessExecutor()
    executor = FleetExecutor(local, dispatch.dispatch, lambda: bool(workers))
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
    executor, ran = executor_with(sent, workers=["w1"])
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
    executor, ran = executor_with(Recorder(fails=True), workers=["w1"])
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
