"""The seed routes stream their JSON: the same bytes as one document, the loop never held."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import TypeAdapter

from harness import run_api
from heap import heap_frozen
from latlab.api.schemas import Experiment, seed_experiment, seed_result
from latlab.jobs.kinds.probe import KIND
from latlab.settings import Settings
from latlab.storage import JobRecord, JobState, ProbeResult, Store, open_store
from latlab.storage.records import ProgressUpdate

RESULTS = 50_000  # bench/result_dump.py does 1M; this keeps the test to a few seconds
BATCH = 20_000
SPEC = {"host": "127.0.0.1", "port": 9, "interval_s": 0.5, "count": RESULTS}
_START = datetime(2024, 1, 1, tzinfo=UTC)


def _result(job_id: int, seq: int) -> ProbeResult:
    at = _START + timedelta(microseconds=1001 * seq)
    if seq % 100 == 99:  # some failures: their nulls and error text go through too
        return ProbeResult(job_id, seq, 0, -1.0, at, at, error="connect: refused")
    return ProbeResult(job_id, seq, 200, 1 + seq % 997 / 7, at, at, 0.25, 0.5 + seq % 3, 0.125)


async def _store_results(store: Store, job_id: int, count: int) -> None:
    for first in range(0, count, BATCH):
        results = [_result(job_id, seq) for seq in range(first, min(first + BATCH, count))]
        await store.checkpoint(results, [ProgressUpdate(KIND, job_id, {"done": first})])


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[tuple[Store, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}"
    store = await open_store(url)
    try:
        yield store, url
    finally:
        await store.close()


def _settings(url: str) -> Settings:
    return Settings(storage_url=url, freeze_gc=False)


async def _as_before(store: Store, jobs: list[JobRecord]) -> bytes:
    """What the routes answered before streaming: the whole model list, dumped at once."""
    jobs = [await store.get_job(KIND, job.id) for job in jobs]  # results moved updated_at
    documents = [seed_experiment(job, await store.probe_results.list(job.id)) for job in jobs]
    return TypeAdapter(list[Experiment]).dump_json(documents)


class LoopWatch:
    """The longest the event loop went without running a 1 ms timer (its stall), in CPU time
    of its thread: time the OS gives other processes (a busy CI machine) does not count."""

    def __init__(self) -> None:
        self.max_stall_s = 0.0

    async def run(self) -> None:
        last = time.thread_time()
        while True:
            await asyncio.sleep(0.001)
            now = time.thread_time()
            self.max_stall_s = max(self.max_stall_s, now - last)
            last = now


async def _healthz_times_s(api: httpx.AsyncClient, done: asyncio.Event) -> list[float]:
    times = []
    while not done.is_set():
        began = time.perf_counter()
        assert (await api.get("/healthz")).status_code == 200
        times.append(time.perf_counter() - began)
        await asyncio.sleep(0.01)
    return times


async def test_a_large_result_dump_leaves_the_loop_free(
    sqlite_store: tuple[Store, str],
) -> None:
    store, url = sqlite_store
    (job,) = await store.create_jobs(KIND, [SPEC], state=JobState.COMPLETED)
    await _store_results(store, job.id, RESULTS)
    watch, done = LoopWatch(), asyncio.Event()
    async with run_api(_settings(url)) as api:
        # FastAPI prepares a route on its first request (~0.1 s): not what is measured here.
        await api.get("/result_experiment", params={"experiment_id": job.id + 1})
        with heap_frozen():
            watcher = asyncio.create_task(watch.run())
            health = asyncio.create_task(_healthz_times_s(api, done))
            response = await api.get("/result_experiment", params={"experiment_id": job.id})
            done.set()
            times_s = await health
            watcher.cancel()
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == RESULTS
    for seq in (0, 99, 12_345, RESULTS - 1):
        assert results[seq] == seed_result(_result(job.id, seq)).model_dump(mode="json")
    # Before, the loop was held for the whole dump (~1 s here, 15 s for 1M results): /healthz
    # waited that long. Now it waits for a page at most, a few ms; the margins are for a busy
    # machine (bench/result_dump.py measures the figures on 1M results).
    assert len(times_s) >= 5
    assert max(times_s) < 0.5
    assert watch.max_stall_s < 0.05


async def test_result_experiment_answers_the_same_bytes_as_before(
    sqlite_store: tuple[Store, str],
) -> None:
    store, url = sqlite_store
    (job,) = await store.create_jobs(KIND, [SPEC], state=JobState.COMPLETED)
    await _store_results(store, job.id, 1234)  # pages of 500: a partial last one
    async with run_api(_settings(url)) as api:
        response = await api.get("/api/result_experiment", params={"experiment_id": job.id})
        missing = await api.get("/result_experiment", params={"experiment_id": job.id + 1})
    assert response.headers["content-type"] == "application/json"
    assert b"[" + response.content + b"]" == await _as_before(store, [job])
    assert missing.status_code == 404


async def test_list_experiments_pages_and_answers_the_same_bytes_as_before(
    sqlite_store: tuple[Store, str],
) -> None:
    store, url = sqlite_store
    jobs = await store.create_jobs(KIND, [SPEC] * 205)  # three pages of experiments
    for job in (jobs[0], jobs[150]):
        await _store_results(store, job.id, 700)
    async with run_api(_settings(url)) as api:
        response = await api.get("/list_experiments")
        under_api = await api.get("/api/list_experiments")
    assert response.content == await _as_before(store, jobs)
    assert json.loads(under_api.content)[204]["id"] == jobs[204].id
