"""A load run split over two ``latlab worker`` processes beside ``latlab serve``, on one SQLite
store and the local Redis, against a target in this process that counts what it is sent."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet import WorkerProcess, fleet_env, latlab_worker, listed, serve_and_workers, workers
from harness import CountingTarget, wait_for
from latlab.measure.load.seconds import SecondStats
from latlab.storage import open_store
from latlab.storage.records import TOTAL_BUCKET
from load_workers import load_workers
from services import require_redis

RUNS = "/api/v1/load-runs"
pytestmark = pytest.mark.timeout(120)


@asynccontextmanager
async def api_and_two_workers(
    db: Path, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, WorkerProcess, WorkerProcess]]:
    """One shard a worker: ``--capacity 1`` each."""
    env = env or fleet_env(require_redis())
    one_shard_each = ("--capacity", "1")
    with serve_and_workers(db, env, {"a": one_shard_each, "b": one_shard_each}) as (
        [url],
        [a, b],
    ):
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:

            async def both_listed() -> bool:
                return {a.id, b.id} <= set(await workers(api))

            await wait_for(both_listed, what="both workers listed")
            yield api, a, b


async def started(api: httpx.AsyncClient, target: CountingTarget, spec: dict[str, Any]) -> int:
    """A run of ``spec`` against ``target``, created and started; its id."""
    url = f"http://127.0.0.1:{target.port}/"
    created = await api.post(RUNS, json={**spec, "url": url}, params={"start": True})
    assert created.status_code == 201, created.text
    run_id: int = created.json()["id"]
    return run_id


async def finished(api: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    async def ended() -> bool:
        state = (await api.get(f"{RUNS}/{run_id}")).json()["state"]
        return state in ("completed", "failed", "stopped")

    await wait_for(ended, 60, what=f"load run {run_id} to end")
    run: dict[str, Any] = (await api.get(f"{RUNS}/{run_id}")).json()
    return run


async def merging(api: httpx.AsyncClient, run_id: int) -> None:
    async def merged() -> bool:
        progress = (await api.get(f"{RUNS}/{run_id}")).json()["progress"]
        return int(progress.get("seconds", 0)) > 0

    await wait_for(merged, 30, what="the first merged second")


async def stored_seconds(db: Path, kind: str, job_id: int) -> dict[int, SecondStats]:
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    try:
        stored = await store.histograms.read(kind, job_id, TOTAL_BUCKET, 100_000)
    finally:
        await store.close()
    return {n: SecondStats.from_payload(payload) for n, payload in stored.items()}


async def test_a_run_over_two_workers_sends_exactly_n_and_merges_bucket_for_bucket(
    tmp_path: Path,
) -> None:
    db = tmp_path / "latlab.db"
    spec = {"connections": 8, "requests": 20_000, "shards": 2}
    async with CountingTarget() as target, api_and_two_workers(db) as (api, a, b):
        run = await finished(api, await started(api, target, spec))
        logs = a.output(), b.output()
    assert run["state"] == "completed", run
    assert run["stats"]["requests"] == 20_000 == target.requests
    shard_ids = run["progress"]["shards"]
    claimed_by = [
        [worker for worker, log in enumerate(logs) if f"load_shard job {shard} claimed" in log]
        for shard in shard_ids
    ]
    assert sorted(claimed_by) == [[0], [1]]  # one shard on each worker
    merged = await stored_seconds(db, "load", run["id"])
    shards = [await stored_seconds(db, "load_shard", i) for i in shard_ids]
    assert [s[TOTAL_BUCKET].requests for s in shards] == [10_000, 10_000]
    for n, second in merged.items():
        parts = [s[n].service.bucket_counts() for s in shards if n in s]
        assert Counter(second.service.bucket_counts()) == sum(map(Counter, parts), Counter())


async def test_a_rate_change_is_divided_among_the_shards_on_their_workers(tmp_path: Path) -> None:
    db = tmp_path / "latlab.db"
    spec = {"connections": 4, "rate": 100.0, "duration": "3s", "shards": 2}
    async with CountingTarget() as target, api_and_two_workers(db) as (api, _, _):
        run_id = await started(api, target, spec)

        await merging(api, run_id)
        changed = await api.patch(f"{RUNS}/{run_id}", json={"rate": 300.0, "connections": 6})
        run = await finished(api, run_id)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["progress"]["rate"], changed.json()["progress"]["connections"]) == (
        300.0,
        6,
    )
    assert run["state"] == "completed", run
    assert (run["progress"]["rate"], run["progress"]["connections"]) == (300.0, 6)
    assert run["stats"]["requests"] > 100 * 3  # it sent faster than it was started at


async def test_a_stop_keeps_the_seconds_the_workers_store_as_they_halt(tmp_path: Path) -> None:
    """Found in review: the stop merged before the workers had stored the second in
    progress, so the run's summary came out below the sum of its shards."""
    db = tmp_path / "latlab.db"
    spec = {"connections": 4, "duration": "30s", "shards": 2}
    async with CountingTarget(delay_s=0.005) as target, api_and_two_workers(db) as (api, _, _):
        run_id = await started(api, target, spec)

        await merging(api, run_id)
        stopped = await api.post(f"{RUNS}/{run_id}/stop")
        shard_ids = stopped.json()["progress"]["shards"]
        totals = [(await stored_seconds(db, "load_shard", i))[TOTAL_BUCKET] for i in shard_ids]
    assert stopped.status_code == 200, stopped.text
    summary = stopped.json()["progress"]["requests"]
    assert summary == sum(total.requests for total in totals) > 0


async def test_sigterm_on_a_busy_worker_hands_its_shard_on_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """Found in review: a worker stopped by SIGTERM failed its shard, and so the whole run
    (``shard 1 of 2 failed: interrupted``). Its shard drains, is handed on and goes on from
    its checkpoint on another worker: the target counts exactly the run's requests."""
    db = tmp_path / "latlab.db"
    env = fleet_env(require_redis())
    spec = {"connections": 8, "rate": 400.0, "requests": 1200, "shards": 2}
    async with CountingTarget(delay_s=0.02) as target, api_and_two_workers(db, env) as (api, a, b):
        run_id = await started(api, target, spec)
        await merging(api, run_id)
        sent_s = time.monotonic()
        a.process.terminate()  # its answers in flight come while it drains: the loop runs on
        assert await asyncio.to_thread(a.process.wait, 15) == 0
        took_s = time.monotonic() - sent_s
        with latlab_worker(db, env, "--capacity", "1", name="c") as c:
            run = await finished(api, run_id)
            taken_on = b.output() + c.output()
    assert run["state"] == "completed", run
    assert took_s < 2.0, f"a busy worker took {took_s:.2f} s to hand its shard off and stop"
    assert run["stats"]["requests"] == 1200 == target.requests
    assert taken_on.count(f"claimed (was {a.id})") == 1  # b or c, whichever had room first
    shards = run["progress"]["shards"]
    totals = [(await stored_seconds(db, "load_shard", i))[TOTAL_BUCKET] for i in shards]
    assert [total.requests for total in totals] == [600, 600]


async def test_a_paused_shard_resumes_on_its_worker_in_the_processes_started_while_paused(
    tmp_path: Path,
) -> None:
    """A resume must reach the shards within 100 ms; a new load process takes ~80 ms to
    start. Each worker starts its shard's process during the pause, and the resume sends
    each shard back to its worker (not to the idle third one) where it takes that process."""
    db = tmp_path / "latlab.db"
    env = fleet_env(require_redis())
    spec = {"connections": 4, "rate": 200.0, "duration": "60s", "shards": 2}
    async with CountingTarget() as target, api_and_two_workers(db, env) as (api, a, b):
        run_id = await started(api, target, spec)
        await merging(api, run_id)
        shards = (await api.get(f"{RUNS}/{run_id}")).json()["progress"]["shards"]
        loading = {pid for worker in (a, b) for pid in load_workers(worker.process.pid)}
        with latlab_worker(db, env, "--capacity", "1", name="c") as c:
            await wait_for(lambda: listed(api, c.id), what="the third worker listed")
            paused = await api.post(f"{RUNS}/{run_id}/pause")

            async def each_warm() -> bool:
                held = [load_workers(worker.process.pid) for worker in (a, b)]
                return all(len(pids) == 1 and pids[0] not in loading for pids in held)

            await wait_for(each_warm, 20, "a process started on each worker while paused")
            warm = {worker.id: load_workers(worker.process.pid) for worker in (a, b)}
            before = await shard_requests(db, shards)
            resumed = await api.post(f"{RUNS}/{run_id}/resume")

            async def both_sending() -> bool:
                now = await shard_requests(db, shards)
                return all(n > was for n, was in zip(now, before, strict=True))

            await wait_for(both_sending, 20, "both shards sending after the resume")
            now = {worker.id: load_workers(worker.process.pid) for worker in (a, b)}
            idle = load_workers(c.process.pid)
            stopped = await api.post(f"{RUNS}/{run_id}/stop")
    assert (paused.status_code, resumed.status_code, stopped.status_code) == (200, 200, 200)
    assert len(loading) == 2
    assert now == warm  # the shards run in them: no process was started for the resume
    assert idle == []
    assert "claimed" not in c.output()


async def shard_requests(db: Path, shards: list[int]) -> list[int]:
    """Each shard's requests so far, as its checkpoints stored them."""
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    try:
        return [
            int((await store.get_job("load_shard", i)).progress.get("requests", 0)) for i in shards
        ]
    finally:
        await store.close()
