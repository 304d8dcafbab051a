"""The jobs contract, on every adapter: memory, SQLite, the local PostgreSQL, SecantusDB.

Job records, their progress and named values (``JobStore``); the result streams have their
own contract in ``test_results_contract.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from store_samples import probe_result as result

from conftest import STORE_KINDS
from latlab.storage import JobNotFound, JobState, StateConflict, Store
from latlab.storage.records import ProgressUpdate

pytestmark = pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)


async def test_create_hands_out_increasing_integer_ids(store: Store) -> None:
    first = await store.create_job("probe", {"host": "a"})
    second = await store.create_job("probe", {"host": "b"})
    assert isinstance(first.id, int)
    assert second.id > first.id
    assert first.state is JobState.CREATED
    assert first.spec == {"host": "a"}
    assert first.progress == {}


async def test_ids_are_counted_per_kind(store: Store) -> None:
    probes = [await store.create_job("probe", {}) for _ in range(3)]
    bot = await store.create_job("bot", {"start_number": 3})
    assert [job.id for job in probes] == [1, 2, 3]
    assert bot.id == 1
    assert (await store.create_job("probe", {})).id == 4


async def test_ids_are_never_reused_after_delete(store: Store) -> None:
    job = await store.create_job("probe", {})
    await store.delete_job("probe", job.id)
    assert (await store.create_job("probe", {})).id > job.id
    bots = await store.create_jobs("bot", [{}, {}])
    await store.delete_job("bot", bots[-1].id)
    assert (await store.create_job("bot", {})).id == bots[-1].id + 1


async def test_jobs_of_two_kinds_with_one_id_stay_apart(store: Store) -> None:
    probe = await store.create_job("probe", {"host": "a"})
    bot = await store.create_job("bot", {"start_number": 1})
    assert probe.id == bot.id
    await store.checkpoint([result(probe.id, 0)], [ProgressUpdate("bot", bot.id, {"n": 1})])
    await store.set_state("bot", bot.id, JobState.RUNNING, expected={JobState.CREATED})
    assert (await store.get_job("probe", probe.id)).progress == {}
    assert (await store.get_job("probe", probe.id)).state is JobState.CREATED
    await store.delete_job("bot", bot.id)
    assert (await store.get_job("probe", probe.id)).spec == {"host": "a"}
    assert await store.probe_results.count(probe.id) == 1


async def test_create_jobs_keeps_order_with_ascending_ids(store: Store) -> None:
    await store.create_job("probe", {})
    created = await store.create_jobs("probe", [{"n": n} for n in range(2500)])
    assert [job.id for job in created] == list(range(2, 2502))
    assert [job.spec for job in created[:3]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    listed = await store.list_jobs("probe", offset=1)
    assert [(job.id, job.spec) for job in listed.items] == [(j.id, j.spec) for j in created]
    assert await store.create_jobs("probe", []) == []


async def test_create_jobs_can_create_them_running(store: Store) -> None:
    created = await store.create_jobs("bot", [{"n": 1}, {"n": 2}], state=JobState.RUNNING)
    assert {job.state for job in created} == {JobState.RUNNING}
    running = await store.list_jobs("bot", states={JobState.RUNNING})
    assert [job.id for job in running.items] == [1, 2]


async def test_create_jobs_is_all_or_nothing(store: Store) -> None:
    specs: list[dict[str, object]] = [{"n": n} for n in range(2500)]
    specs[1800] = {"not json": {1, 2}}  # past the first SQL chunk: earlier rows were sent
    with pytest.raises(TypeError, match="cannot store"):
        await store.create_jobs("probe", specs)
    with pytest.raises(TypeError, match="cannot store"):
        await store.create_job("probe", {"not json": {3}})
    assert (await store.list_jobs("probe")).total == 0
    assert (await store.create_job("probe", {})).id == 1  # the failed batches took no id


async def test_get_round_trips_aware_utc_times(store: Store) -> None:
    job = await store.create_job("probe", {"nested": {"x": [1, 2]}})
    got = await store.get_job("probe", job.id)
    assert got.spec == {"nested": {"x": [1, 2]}}
    assert got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)
    assert abs(got.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_get_unknown_or_other_kind_raises_not_found(store: Store) -> None:
    job = await store.create_job("probe", {})
    with pytest.raises(JobNotFound):
        await store.get_job("probe", job.id + 1000)
    with pytest.raises(JobNotFound):
        await store.get_job("bot", job.id)


async def test_list_filters_by_kind_and_state_and_pages(store: Store) -> None:
    ids = [(await store.create_job("probe", {"n": n})).id for n in range(5)]
    await store.create_job("bot", {})
    await store.set_state("probe", ids[1], JobState.RUNNING, expected={JobState.CREATED})
    page = await store.list_jobs("probe", offset=1, limit=2)
    assert [job.id for job in page.items] == ids[1:3]
    assert page.total == 5
    running = await store.list_jobs("probe", states={JobState.RUNNING})
    assert [job.id for job in running.items] == [ids[1]]
    assert running.total == 1


async def test_set_state_is_compare_and_set(store: Store) -> None:
    job = await store.create_job("probe", {})
    moved = await store.set_state("probe", job.id, JobState.RUNNING, expected={JobState.CREATED})
    assert moved.state is JobState.RUNNING
    assert moved.updated_at >= job.updated_at
    with pytest.raises(StateConflict) as conflict:
        await store.set_state("probe", job.id, JobState.PAUSED, expected={JobState.CREATED})
    assert conflict.value.job.state is JobState.RUNNING
    failed = await store.set_state(
        "probe", job.id, JobState.FAILED, expected={JobState.RUNNING}, error="boom"
    )
    assert (failed.state, failed.error) == (JobState.FAILED, "boom")


async def test_set_state_of_unknown_job_raises_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.set_state("probe", 987654, JobState.RUNNING, expected={JobState.CREATED})


async def test_progress_for_a_job_of_another_kind_is_ignored(store: Store) -> None:
    job = await store.create_job("probe", {})
    await store.checkpoint([], [ProgressUpdate("bot", job.id, {"number": 5})])
    assert (await store.get_job("probe", job.id)).progress == {}


async def test_ping_succeeds_on_a_live_store(store: Store) -> None:
    await store.ping()


async def test_values_are_created_replaced_and_read_back(store: Store) -> None:
    assert await store.get_value("bots.heartbeat.a") is None
    await store.set_value("bots.heartbeat.a", {"at_ms": 1})
    await store.set_value("bots.heartbeat.a", {"at_ms": 2, "n": [1, 2]})
    await store.set_value("bots.heartbeat.b", {"at_ms": 3})
    assert await store.get_value("bots.heartbeat.a") == {"at_ms": 2, "n": [1, 2]}
    assert await store.get_value("bots.heartbeat.b") == {"at_ms": 3}
