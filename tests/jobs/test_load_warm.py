"""Processes kept warm for a paused load run's resume, and for no other halt."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from harness import CountingTarget, running_engine, wait_for
from latlab.jobs.kinds import load_warm
from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_warm import ResumeWarmth
from latlab.jobs.state import Action
from latlab.storage import JobState, Store
from load_workers import kept, load_workers


@asynccontextmanager
async def running_warmth() -> AsyncIterator[ResumeWarmth]:
    warmth = ResumeWarmth()
    try:
        async with kept(warmth.processes):
            yield warmth
    finally:
        await warmth.close()


async def warm(warmth: ResumeWarmth, count: int) -> None:
    async def reached() -> bool:
        return warmth.processes.count == count

    await wait_for(reached, 20, f"{count} warm processes")


async def job_in(store: Store, state: JobState) -> tuple[str, int]:
    job = await store.create_job("load", {"url": "http://127.0.0.1:9/"})
    await store.set_state("load", job.id, JobState.RUNNING, expected={JobState.CREATED})
    if state is not JobState.RUNNING:
        await store.set_state("load", job.id, state, expected={JobState.RUNNING})
    return ("load", job.id)


async def test_a_halt_of_a_job_the_store_has_paused_warms_its_processes(store: Store) -> None:
    """A worker whose shard was paused through the API: the state moved before the halt."""
    async with running_warmth() as warmth:
        warmth.halted(await job_in(store, JobState.PAUSED), 2, store)
        await warmth.settled()
        await warm(warmth, 2)


async def test_a_halt_of_a_stopped_or_deleted_job_warms_nothing(store: Store) -> None:
    async with running_warmth() as warmth:
        stopped = await job_in(store, JobState.STOPPED)
        deleted = await job_in(store, JobState.RUNNING)
        await store.delete_job(*deleted)
        warmth.halted(stopped, 2, store)
        warmth.halted(deleted, 2, store)
        await warmth.settled()
        assert warmth.pending == 0
        warmth.paused(stopped)  # forgotten already: nothing to warm
        warmth.paused(deleted)
        assert warmth.processes.wanted == 0


async def test_a_pause_handled_here_after_the_halt_warms_once(store: Store) -> None:
    """The process that handles a pause halts the job before the state moves: the check
    finds it running, the manager's word that it was paused comes after."""
    async with running_warmth() as warmth:
        key = await job_in(store, JobState.RUNNING)
        warmth.halted(key, 2, store)
        await warmth.settled()
        assert (warmth.pending, warmth.processes.wanted) == (1, 0)
        warmth.paused(key)
        warmth.paused(key)
        await warm(warmth, 2)


def slow_spec(port: int, **fields: Any) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:{port}/", "connections": 2, "duration": "60s", **fields}


async def first_second(store: Store, job_id: int) -> None:
    async def counting() -> bool:
        return int((await store.get_job("load", job_id)).progress.get("seconds", 0)) >= 1

    await wait_for(counting, 20, "a stored second")


async def test_a_stopped_or_deleted_run_leaves_no_process_behind(store: Store) -> None:
    runner = LoadRunner()
    async with CountingTarget() as target, running_engine(store, [runner]) as manager:
        stopped = await manager.create("load", slow_spec(target.port, workers=2), start=True)
        deleted = await manager.create("load", slow_spec(target.port, workers=2), start=True)
        await first_second(store, stopped.id)
        await first_second(store, deleted.id)
        await manager.act("load", stopped.id, Action.STOP)
        await manager.delete("load", deleted.id)
        await runner.warmth.settled()
        assert (runner.warmth.pending, runner.warmth.processes.wanted) == (0, 0)
        assert load_workers(os.getpid()) == []


async def test_a_halt_not_followed_by_its_pause_in_time_is_forgotten(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a halt whose cause never came (a lost lease) stayed for ever, and a
    later pause of that job handled here, while it ran elsewhere, started processes."""
    clock = [1000.0]
    monkeypatch.setattr(load_warm, "monotonic", lambda: clock[0])
    async with running_warmth() as warmth:
        lost, other = await job_in(store, JobState.RUNNING), await job_in(store, JobState.RUNNING)
        warmth.halted(lost, 2, store)
        await warmth.settled()
        clock[0] += load_warm.HALT_KEPT_S + 1
        warmth.paused(lost)
        assert warmth.processes.wanted == 0
        warmth.halted(lost, 2, store)
        clock[0] += load_warm.HALT_KEPT_S + 1
        warmth.halted(other, 1, store)  # and no halt is kept past that long
        await warmth.settled()
        assert warmth.pending == 1
