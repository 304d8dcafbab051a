"""Answering a load run's change asked over Redis: only for runs here, with the body checked
again (any process that can publish on Redis can ask)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from latlab.jobs.kinds.load import LoadRunner, RetuneRefused
from latlab.jobs.kinds.load_remote import ASKS, retune_answerer, retune_anywhere
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
    answer = await retune_answerer({"load": runner}, store)(
        "load", 1, {"rate": 300.0, "connections": None}
    )
    assert answer == {"values": {"rate": 300.0, "connections": None}}
    assert runner.changes == [{"rate": 300.0, "connections": None}]


async def test_a_run_elsewhere_or_another_kind_gets_no_answer_from_here(
    store: MemoryStore,
) -> None:
    answer = retune_answerer({"load": RunningHere()}, store)
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
    answer = await retune_answerer({"load": runner}, store)("load", 1, body)
    assert answer is not None
    assert answer["error"].startswith("not a change of rate or connections")
    assert runner.changes == []


class Answering:
    """Stands for the Redis asker: answers every question with ``answer``."""

    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer

    async def ask(self, kind: str, job_id: int, body: dict[str, Any]) -> dict[str, Any] | None:
        return self.answer


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        (None, "load run 1 is not running in any process"),
        ({"error": "load run 1 is a closed-model run"}, "closed-model"),
        ({"valeurs": {}}, "its process answered"),
    ],
)
async def test_a_change_elsewhere_is_refused_with_what_went_wrong(
    store: MemoryStore, answer: dict[str, Any] | None, refusal: str
) -> None:
    job = await store.get_job("load", 1)
    with pytest.raises(RetuneRefused, match=refusal):
        await retune_anywhere(LoadRunner(), Answering(answer), job, rate=5.0, connections=None)  # type: ignore[arg-type]


class StartingHere(RunningHere):
    """Run 1's pool is being started here, and is up once ``up()`` is called."""

    def __init__(self) -> None:
        super().__init__()
        self.pool_up = False
        self._starting = self._starts.starting(1)
        self._starting.__enter__()

    def workers_running(self, job_id: int) -> int | None:
        return 1 if job_id == 1 and self.pool_up else None

    def up(self) -> None:
        self.pool_up = True
        self._starts.up(1)


async def test_a_change_asked_while_the_pool_starts_is_answered_once_it_is_up(
    store: MemoryStore,
) -> None:
    """Found by the fresh-clone CI run: a worker listed the run as its own, but its load
    processes were still starting, and the change got a 409 "not running in any process"."""
    runner = StartingHere()
    answer = retune_answerer({"load": runner}, store)
    asked = asyncio.ensure_future(answer("load", 1, {"rate": 9.0}))
    await asyncio.sleep(0)  # the answerer is waiting for the pool, not answering nobody
    assert not asked.done()
    runner.up()
    assert await asked == {"values": {"rate": 9.0, "connections": None}}


class AnsweringLate(Answering):
    """No process answers the first ``unanswered`` questions (the run is not claimed yet)."""

    def __init__(self, answer: dict[str, Any], unanswered: int) -> None:
        super().__init__(answer)
        self.unanswered = unanswered
        self.asked = 0

    async def ask(self, kind: str, job_id: int, body: dict[str, Any]) -> dict[str, Any] | None:
        self.asked += 1
        return None if self.asked <= self.unanswered else self.answer


async def test_a_run_not_claimed_yet_is_asked_again_and_a_run_nobody_runs_refused(
    store: MemoryStore,
) -> None:
    job = await store.get_job("load", 1)
    claimed_late = AnsweringLate({"values": {"rate": 5.0, "connections": 2}}, ASKS - 1)
    changed = await retune_anywhere(LoadRunner(), claimed_late, job, rate=5.0, connections=None)  # type: ignore[arg-type]
    nobody = AnsweringLate({}, ASKS)
    with pytest.raises(RetuneRefused, match="not running in any process"):
        await retune_anywhere(LoadRunner(), nobody, job, rate=5.0, connections=None)  # type: ignore[arg-type]
    assert changed == {"rate": 5.0, "connections": 2}
    assert (claimed_late.asked, nobody.asked) == (ASKS, ASKS)
