"""Concurrent creates share one transaction; each caller keeps its own all-or-nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from conftest import STORE_KINDS
from latlab.storage import JobRecord, JobState, Store
from latlab.storage.memory import MemoryStore
from latlab.storage.writer import BatchWriter


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0

    async def create_jobs(
        self,
        kind: str,
        specs: Sequence[Mapping[str, Any]],
        *,
        state: JobState = JobState.CREATED,
    ) -> list[JobRecord]:
        self.transactions += 1
        return await super().create_jobs(kind, specs, state=state)


async def test_fifty_concurrent_creates_are_one_transaction_in_call_order() -> None:
    store = CountingStore()
    async with BatchWriter(store) as writer:
        created = await asyncio.gather(
            *(writer.create_jobs("bot", [{"n": n}], state=JobState.RUNNING) for n in range(50))
        )
    assert store.transactions == 1
    assert [(jobs[0].id, jobs[0].spec["n"]) for jobs in created] == [(n + 1, n) for n in range(50)]
    assert {jobs[0].state for jobs in created} == {JobState.RUNNING}


@pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
async def test_a_spec_the_store_cannot_hold_fails_only_its_caller(store: Store) -> None:
    async with BatchWriter(store) as writer:
        outcomes = await asyncio.gather(
            writer.create_jobs("probe", [{"a": 1}, {"a": 2}], state=JobState.CREATED),
            writer.create_jobs("probe", [{"bad": {1, 2}}], state=JobState.CREATED),
            writer.create_jobs("probe", [{"a": 3}], state=JobState.CREATED),
            return_exceptions=True,
        )
    good, bad, last = outcomes
    assert isinstance(bad, TypeError)
    assert isinstance(good, list)
    assert isinstance(last, list)
    assert [job.spec for job in (*good, *last)] == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert (await store.list_jobs("probe")).total == 3
