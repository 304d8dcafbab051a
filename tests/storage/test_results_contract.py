"""The result-stream contract, every adapter and every kind of record.

Each case names a kind, how to reach its stream on a store and how to make one of its records;
a new kind of record adds a case here (and its own extras below, as probes have latencies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from store_samples import T0, probe_result, site_result

from conftest import STORE_KINDS
from latlab.storage import JobNotFound, ProbeResult, Record, ResultStream, Store
from latlab.storage.records import ProgressUpdate

pytestmark = pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)


@dataclass(frozen=True)
class StreamCase:
    kind: str
    stream: Callable[[Store], ResultStream[Any]]
    record: Callable[[int, int], Record]


CASES = [
    StreamCase("probe", lambda store: store.probe_results, probe_result),
    StreamCase("probe_site", lambda store: store.site_results, site_result),
]


@pytest.fixture(params=CASES, ids=[case.kind for case in CASES])
def case(request: pytest.FixtureRequest) -> StreamCase:
    found: StreamCase = request.param
    return found


async def test_checkpoint_stores_records_and_merges_progress(
    store: Store, case: StreamCase
) -> None:
    job = await store.create_job(case.kind, {})
    await store.checkpoint([case.record(job.id, 0), case.record(job.id, 1)], [])
    await store.checkpoint([], [ProgressUpdate(case.kind, job.id, {"done": 2})])
    await store.checkpoint([], [ProgressUpdate(case.kind, job.id, {"extra": "x"})])
    assert (await store.get_job(case.kind, job.id)).progress == {"done": 2, "extra": "x"}
    expected = [case.record(job.id, 0), case.record(job.id, 1)]
    assert await case.stream(store).list(job.id) == expected


async def test_checkpoint_is_idempotent_per_seq(store: Store, case: StreamCase) -> None:
    job = await store.create_job(case.kind, {})
    await store.checkpoint([case.record(job.id, 0)], [])
    await store.checkpoint([case.record(job.id, 0), case.record(job.id, 1)], [])
    assert await case.stream(store).count(job.id) == 2


async def test_records_page_by_seq(store: Store, case: StreamCase) -> None:
    job = await store.create_job(case.kind, {})
    other = await store.create_job(case.kind, {})
    await store.checkpoint([case.record(job.id, seq) for seq in range(50)], [])
    await store.checkpoint([case.record(other.id, 0)], [])
    stream = case.stream(store)
    page = await stream.list(job.id, offset=45, limit=3)
    assert [r.seq for r in page] == [45, 46, 47]
    assert [r.seq for r in await stream.list(job.id, offset=48)] == [48, 49]
    assert await stream.count(job.id) == 50


async def test_delete_removes_job_and_records(store: Store, case: StreamCase) -> None:
    job = await store.create_job(case.kind, {})
    await store.checkpoint([case.record(job.id, 0)], [])
    await store.delete_job(case.kind, job.id)
    with pytest.raises(JobNotFound):
        await store.get_job(case.kind, job.id)
    assert await case.stream(store).count(job.id) == 0
    with pytest.raises(JobNotFound):
        await store.delete_job(case.kind, job.id)


# Probe results: what only they have.


async def test_probe_results_keep_failed_probes(store: Store) -> None:
    job = await store.create_job("probe", {})
    await store.checkpoint([probe_result(job.id, 0), probe_result(job.id, 1, -1.0)], [])
    expected = [probe_result(job.id, 0), probe_result(job.id, 1, -1.0)]
    assert await store.probe_results.list(job.id) == expected


async def test_probe_results_keep_the_first_write_of_a_seq(store: Store) -> None:
    job = await store.create_job("probe", {})
    await store.checkpoint([probe_result(job.id, 0, 1.0)], [])
    await store.checkpoint([probe_result(job.id, 0, 9.0), probe_result(job.id, 1, 2.0)], [])
    assert await store.probe_results.latencies_ms(job.id) == [1.0, 2.0]
    assert await store.probe_results.count(job.id) == 2


async def test_result_times_keep_at_least_millisecond_precision(store: Store) -> None:
    job = await store.create_job("probe", {})
    precise = T0 + timedelta(microseconds=1234)
    await store.checkpoint([ProbeResult(job.id, 0, 200, 1.0, precise, precise)], [])
    (stored,) = await store.probe_results.list(job.id)
    assert abs(stored.timestamp - precise) < timedelta(milliseconds=1)
    assert stored.timestamp.utcoffset() == timedelta(0)


async def test_a_series_at_a_location_is_apart_from_the_experiment_of_its_id(
    store: Store,
) -> None:
    experiment = await store.create_job("probe", {})
    site = await store.create_job("probe_site", {"experiment": experiment.id})
    assert site.id == experiment.id  # ids are per kind: the same number, two jobs
    await store.checkpoint([probe_result(experiment.id, 0, 1.0), site_result(site.id, 0, 2.0)], [])
    (stored,) = await store.site_results.list(site.id)
    assert (stored.location, stored.latency_ms) == ("eu-1", 2.0)
    await store.delete_job("probe_site", site.id)
    assert await store.probe_results.latencies_ms(experiment.id) == [1.0]
    assert await store.site_results.count(site.id) == 0


async def test_records_of_a_job_deleted_meanwhile_are_dropped_not_the_batch(
    store: Store, case: StreamCase
) -> None:
    """Found in review: a worker's last checkpoint of a job the control plane had deleted
    failed the whole batch on SQL (the foreign key), losing the other jobs' records in it,
    and left orphan records on MongoDB."""
    kept, deleted = await store.create_job(case.kind, {}), await store.create_job(case.kind, {})
    await store.delete_job(case.kind, deleted.id)
    records = [case.record(kept.id, 0), case.record(deleted.id, 0)]
    updates = [ProgressUpdate(case.kind, job.id, {"done": 1}) for job in (kept, deleted)]
    dropped = await store.checkpoint(records, updates)
    assert dropped == {(case.kind, deleted.id)}
    assert await case.stream(store).list(kept.id) == [case.record(kept.id, 0)]
    assert await case.stream(store).count(deleted.id) == 0
