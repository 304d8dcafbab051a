"""Answering a load run's change asked over Redis: only for runs here, with the body checked
again (any process that can publish on Redis can ask)."""

from __future__ import annotations

from typing import Any

import pytest

from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_remote import retune_answerer
from latlab.storage import JobRecord, JobState
from latlab.storage.memory import MemoryStore


class RunningHere(LoadRunner):
    """A runner whose run 1 runs here; records the changes it is asked to make."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: list[dict[str, Any]] = []

    def workers_running(self, job_id: int) -> int | None:
        return 1 if job_id == 1 else None

    async def retune(
        self, job: JobRecord, *, rate: float | None = None, connections: int | None = None
    ) -> dict[str, Any]:
        self.changes.append({"rate": rate, "connections": connections})
        return {"rate": rate, "connections": connections}


@pytest.fixture
async def store() -> MemoryStore:
    store = MemoryStore()
    await store.create_jobs("load", [{"url": "http://127.0.0.1:9/"}], state=JobState.RUNNING)
    return store


async def test_a_run_here_is_changed_and_the_values_answered(store: MemoryStore) -> None:
    runner = RunningHere()
    answer = await retune_answerer(runner, store)("load", 1, {"rate": 300.0, "connections": None})
    assert answer == {"values": {"rate": 300.0, "connections": None}}
    assert runner.changes == [{"rate": 300.0, "connections": None}]


async def test_a_run_elsewhere_or_another_kind_gets_no_answer_from_here(
    store: MemoryStore,
) -> None:
    answer = retune_answerer(RunningHere(), store)
    assert await answer("load", 2, {"rate": 300.0}) is None
    assert await answer("probe", 1, {"rate": 300.0}) is None


@pytest.mark.parametrize(
    "body",
    [
        {"rate": "fast"},
        {"rate": -1.0},
        {"rate": True},
        {"rate": float("inf")},
        {"connections": 0},
        {"connections": 2.5},
        {"rate": None, "connections": None},
        {},
    ],
)
async def test_a_malformed_change_is_refused_and_changes_nothing(
    store: MemoryStore, body: dict[str, Any]
) -> None:
    runner = RunningHere()
    answer = await retune_answerer(runner, store)("load", 1, body)
    assert answer is not None
    assert answer["error"].startswith("not a change of rate or connections")
    assert runner.changes == []
