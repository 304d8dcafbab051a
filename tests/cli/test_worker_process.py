"""``latlab worker`` processes beside ``latlab serve``, on one SQLite store and the local Redis.

Failover is timed on the results' own timestamps: the gap between the last probe of the
killed worker and the first of the one that took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet import (
    WorkerProcess,
    fleet_env,
    holder,
    latlab_worker,
    listed,
    serve_and_workers,
    workers,
)
from harness import CountingTarget, latlab_serve, wait_for, wait_state
from latlab.storage import open_store
from outages import OwnRedis
from services import postgres_database, require_redis

COUNT = 200
SPEC = {"host": "127.0.0.1", "interval_s": 0.02, "count": COUNT}
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env() -> dict[str, str]:
    return fleet_env(require_redis())


async def results(api: httpx.AsyncClient, experiment_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:  # pages of 1,000, the most the API gives at once
        page = await api.get(
            f"/api/v1/experiments/{experiment_id}/results",
            params={"offset": len(rows), "limit": 1000},
        )
        page.raise_for_status()
        rows += page.json()["data"]
        if len(rows) >= page.json()["count"]:
            return rows


async def start_experiment(api: httpx.AsyncClient, port: int, count: int = COUNT) -> int:
    created = await api.post(
        "/api/v1/experiments?start=true", json={**SPEC, "port": port, "count": count}
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def wait_held(api: httpx.AsyncClient, experiment_id: int, done: int) -> str:
    """The worker running the experiment, once it has ``done`` probes."""

    async def running_there() -> bool:
        state = (await api.get(f"/api/v1/experiments/{experiment_id}")).json()
        return (
            int(state["done"]) >= done and await holder(api, ("probe", experiment_id)) is not None
        )

    await wait_for(running_there, what=f"experiment {experiment_id} on a worker")
    found = await holder(api, ("probe", experiment_id))
    assert found is not None
    return found


@asynccontextmanager
async def api_and_worker(
    db: Path, env: dict[str, str], *args: str
) -> AsyncIterator[tuple[httpx.AsyncClient, WorkerProcess]]:
    with serve_and_workers(db, env, {"worker": args}) as ([url], [worker]):
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            await wait_for(lambda: listed(api, worker.id), what="the worker listed")
            yield api, worker


@asynccontextmanager
async def api_and_two_workers(
    db: Path, env: dict[str, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, WorkerProcess, WorkerProcess]]:
    with serve_and_workers(db, env, {"a": (), "b": ()}) as ([url], [a, b]):
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            await wait_for(lambda: _both_listed(api, a.id, b.id), what="both workers listed")
            yield api, a, b


def running_first(
    running: str, a: WorkerProcess, b: WorkerProcess
) -> tuple[WorkerProcess, WorkerProcess]:
    """(the worker whose id is ``running``, the other one)."""
    return (a, b) if running == a.id else (b, a)


def largest_gap_s(rows: list[dict[str, Any]]) -> float:
    moments = sorted(datetime.fromisoformat(row["timestamp"]) for row in rows)
    return max((b - a).total_seconds() for a, b in itertools.pairwise(moments))


async def test_an_experiment_runs_on_a_worker_not_in_the_api_process(
    tmp_path: Path, env: dict[str, str], targets_port: int
) -> None:
    worker_args = ("--location", "eu-1", "--capacity", "3")
    async with api_and_worker(tmp_path / "latlab.db", env, *worker_args) as (api, worker):
        listed = (await api.get("/api/v1/workers")).json()["data"]
        experiment_id = await start_experiment(api, targets_port, count=20)
        await wait_state(api, experiment_id, "completed")
        assert sorted(r["seq"] for r in await results(api, experiment_id)) == list(range(20))
        series = f'experiment="{experiment_id}",location="",status_class="2xx"'
        counted = f"latlab_probe_results_total{{{series}}} 20.0"

        async def relayed() -> bool:  # only the worker saw the probes: the relay told the API
            return counted in (await api.get("/metrics")).text

        await wait_for(relayed, what="the API's /metrics to count the worker's probes")
    assert [(w["id"], w["location"], w["capacity"]) for w in listed] == [(worker.id, "eu-1", 3)]
    assert f"probe job {experiment_id} claimed" in worker.output()


async def test_sigkill_of_the_running_worker_hands_the_experiment_on_with_every_probe_once(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = tmp_path / "latlab.db"
    async with CountingTarget() as target, api_and_two_workers(db, env) as (api, a, b):
        experiment_id = await start_experiment(api, target.port)
        running = await wait_held(api, experiment_id, done=COUNT // 2)
        victim, survivor = running_first(running, a, b)
        victim.process.send_signal(signal.SIGKILL)
        await wait_state(api, experiment_id, "completed", timeout_s=60)
        rows = await results(api, experiment_id)
    assert sorted(row["seq"] for row in rows) == list(range(COUNT))
    # Not run twice (results are stored once per seq whatever happens): the target saw each
    # probe once, but the one the killed worker may have sent and not stored.
    assert COUNT <= target.requests <= COUNT + 1
    assert f"probe job {experiment_id} claimed" in survivor.output()
    assert largest_gap_s(rows) < 5.0  # lease (3 s) + the control plane's look (1 s) + claim


async def _both_listed(api: httpx.AsyncClient, *ids: str) -> bool:
    return set(ids) <= set(await workers(api))


async def test_sigterm_ends_an_idle_worker_within_two_seconds(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with latlab_worker(tmp_path / "latlab.db", env) as worker:
        await asyncio.sleep(1.5)  # idle in its blocking reads, past the first read's timeout
        sent_s = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.process.wait, 10)
        took_s = time.monotonic() - sent_s
    assert code == 0, worker.output()
    assert took_s < 2.0, f"an idle worker took {took_s:.2f} s to stop on SIGTERM"


async def test_sigterm_on_a_busy_worker_hands_its_experiment_off_nothing_lost(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = tmp_path / "latlab.db"
    async with CountingTarget() as target, api_and_two_workers(db, env) as (api, a, b):
        experiment_id = await start_experiment(api, target.port)
        running = await wait_held(api, experiment_id, done=COUNT // 3)
        leaving, staying = running_first(running, a, b)
        sent_s = time.monotonic()
        leaving.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(leaving.process.wait, 10)
        took_s = time.monotonic() - sent_s
        await wait_state(api, experiment_id, "completed", timeout_s=60)
        rows = await results(api, experiment_id)
        labels = f'experiment="{experiment_id}",location="",status_class="2xx"'
        counted = f"latlab_probe_results_total{{{labels}}}"

        async def every_probe_relayed() -> bool:
            return f"{counted} {float(COUNT)}" in (await api.get("/metrics")).text

        await wait_for(every_probe_relayed, what="the API's /metrics to count every probe")
    assert code == 0, leaving.output()
    assert took_s < 2.0, f"a busy worker took {took_s:.2f} s to hand off and stop"
    assert sorted(row["seq"] for row in rows) == list(range(COUNT))
    assert COUNT <= target.requests <= COUNT + 1  # none sent twice but one cut off in flight
    assert f"probe job {experiment_id} claimed" in staying.output()


async def test_a_frozen_worker_is_handed_off_and_halts_when_it_wakes(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """SIGSTOP for 6 s (twice the lease) on PostgreSQL, where a frozen process cannot hold
    the whole store the way it can hold SQLite's one write lock. Whether its guard or the
    fence of its next write stops the woken worker, nothing it does lands: the progress
    never goes back, and the target saw no probe twice."""
    db = tmp_path / "latlab.db"
    with postgres_database() as url:
        env = {**env, "LATLAB_STORAGE_URL": url}
        async with CountingTarget() as target, api_and_two_workers(db, env) as (api, a, b):
            experiment_id = await start_experiment(api, target.port, count=COUNT * 2)
            running = await wait_held(api, experiment_id, done=COUNT // 4)
            frozen, other = running_first(running, a, b)
            frozen.process.send_signal(signal.SIGSTOP)
            stopped_s = time.monotonic()
            async with progress_watched(api, experiment_id) as seen:
                await wait_for(lambda: _held_by(api, experiment_id, other.id), what="handoff")
                await asyncio.sleep(max(0.0, stopped_s + 6.0 - time.monotonic()))
                frozen.process.send_signal(signal.SIGCONT)
                await wait_state(api, experiment_id, "completed", timeout_s=60)
            rows = await results(api, experiment_id)
            store = await open_store(url)
            try:
                job = await store.get_job("probe", experiment_id)
            finally:
                await store.close()
    assert sorted(row["seq"] for row in rows) == list(range(COUNT * 2))
    assert seen == sorted(seen), "the progress went back: a stale checkpoint landed"
    assert COUNT * 2 <= target.requests <= COUNT * 2 + 1
    assert job.progress["fleet"] == other.id
    woke = frozen.output()
    assert (
        "lease not renewed in time: halting 1 job(s) here" in woke
        or f"probe job {experiment_id}: checkpoint refused, held elsewhere now" in woke
    ), woke


@asynccontextmanager
async def progress_watched(api: httpx.AsyncClient, experiment_id: int) -> AsyncIterator[list[int]]:
    """The experiment's ``done`` as the API reads it, every 20 ms while the block runs."""
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(int((await api.get(f"/api/v1/experiments/{experiment_id}")).json()["done"]))
            await asyncio.sleep(0.02)

    watching = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


async def _held_by(api: httpx.AsyncClient, experiment_id: int, worker_id: str) -> bool:
    return await holder(api, ("probe", experiment_id)) == worker_id


async def test_a_job_pinned_to_a_location_waits_for_a_worker_there(
    tmp_path: Path, env: dict[str, str], targets_port: int
) -> None:
    db = tmp_path / "latlab.db"
    spec = {**SPEC, "port": targets_port, "count": 10, "location": "us-1"}
    with (
        latlab_serve(db, "--no-targets", env=env) as (_, url),
        latlab_worker(db, env, "--location", "eu-1", name="eu") as elsewhere,
    ):
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            await wait_for(lambda: listed(api, elsewhere.id), what="the eu-1 worker listed")
            created = (await api.post("/api/v1/experiments?start=true", json=spec)).json()
            experiment_id = created["id"]
            waiting = await wait_state(api, experiment_id, "running")
            bot = {"start_number": 7, "location": "us-1"}
            bot_id = (await api.post("/api/v1/bots", json=bot)).json()["id"]
            bot_waiting = (await api.get(f"/api/v1/bots/{bot_id}")).json()["waiting_for"]
            load = {
                "url": f"http://127.0.0.1:{targets_port}/",
                "requests": 50,
                "locations": ["us-1"],
            }
            run_id = (await api.post("/api/v1/load-runs?start=true", json=load)).json()["id"]
            run_waiting = (await api.get(f"/api/v1/load-runs/{run_id}")).json()["waiting_for"]
            with latlab_worker(db, env, "--location", "us-1", name="us") as there:
                done = await wait_state(api, experiment_id, "completed")

                async def run_done() -> bool:
                    run = (await api.get(f"/api/v1/load-runs/{run_id}")).json()
                    return bool(run["state"] == "completed" and run["waiting_for"] is None)

                await wait_for(run_done, what="the pinned load run to complete on the us-1 worker")

                async def bot_printed() -> bool:
                    return f"bot {bot_id}: 7" in there.output()

                await wait_for(bot_printed, what="the pinned bot to print on the us-1 worker")
    assert created["waiting_for"] == waiting["waiting_for"] == "us-1"
    assert waiting["done"] == 0
    assert done["waiting_for"] is None
    assert f"probe job {experiment_id} claimed" in there.output()
    assert "claimed" not in elsewhere.output()
    assert bot_waiting == "us-1"
    assert run_waiting == "us-1"  # found in review: load runs had no waiting_for


@pytest.mark.parametrize(
    ("args", "redis", "said"),
    [
        (["--location", "eu:1"], True, b"--location 'eu:1': use letters, digits"),
        ([], False, b"a worker needs Redis: set LATLAB_REDIS_URL"),
    ],
)
def test_a_worker_refuses_to_start_on_a_mistake_with_one_line(
    tmp_path: Path, env: dict[str, str], args: list[str], redis: bool, said: bytes
) -> None:
    environment = {**os.environ, "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{tmp_path}/l.db"}
    environment.pop("LATLAB_REDIS_URL", None)
    if redis:
        environment.update(env)
    command = [sys.executable, "-m", "latlab", "worker", *args]
    ended = subprocess.run(command, env=environment, capture_output=True, timeout=60, check=False)
    assert ended.returncode == 2
    assert ended.stderr.startswith(b"latlab: " + said)


async def test_workers_authenticate_to_redis_over_tls_and_a_mistake_is_one_line(
    tmp_path: Path, targets_port: int
) -> None:
    """A password and ``rediss://`` end to end (found in review: TLS was tested only as a
    URL's form): a Redis that speaks TLS only, its certificate checked by every client (the
    API's coordination and dispatch, the worker's). A wrong password, or a worker that does
    not trust the certificate, refuses to start in one line that shows no password."""
    db = tmp_path / "latlab.db"
    with OwnRedis(password="right-pw", tls=True) as redis:
        env = {"LATLAB_REDIS_URL": redis.url, "LATLAB_REDIS_PREFIX": "auth"}
        async with api_and_worker(db, env) as (api, worker):
            experiment_id = await start_experiment(api, targets_port, count=5)
            await wait_state(api, experiment_id, "completed")
        wrong = worker_refused(db, env, redis.url.replace("right-pw", "wrong-pw"))
        untrusting = worker_refused(db, env, redis.url.split("?", 1)[0])  # system CAs only
    assert f"probe job {experiment_id} claimed" in worker.output()
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stderr.startswith(b"latlab: Redis refused the user or password")
    assert untrusting.returncode == 3, untrusting.stderr
    assert b"CERTIFICATE_VERIFY_FAILED" in untrusting.stderr
    for ended in (wrong, untrusting):
        assert ended.stderr.count(b"\n") == 1, ended.stderr
        assert b"-pw" not in ended.stderr


def worker_refused(
    db: Path, env: dict[str, str], redis_url: str
) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{db}", **env}
    # A Redis it does not trust is tried until the start-up timeout: 5 s by default.
    refused = {"LATLAB_REDIS_URL": redis_url, "LATLAB_STARTUP_TIMEOUT_S": "0.5"}
    return subprocess.run(
        [sys.executable, "-m", "latlab", "worker"],
        env={**environment, **refused},
        capture_output=True,
        timeout=60,
        check=False,
    )


async def test_after_redis_restarts_empty_jobs_still_go_to_the_worker(
    tmp_path: Path, targets_port: int
) -> None:
    db = tmp_path / "latlab.db"
    with OwnRedis() as redis:
        env = {"LATLAB_REDIS_URL": redis.url, "LATLAB_REDIS_PREFIX": "restart"}
        async with api_and_worker(db, env) as (api, worker):
            before = await start_experiment(api, targets_port, count=5)
            await wait_state(api, before, "completed")
            redis.stop()
            redis.start()  # no persistence: streams, groups, leases and the fleet are gone
            await wait_for(lambda: listed(api, worker.id), what="the worker listed again")
            after = await start_experiment(api, targets_port, count=5)
            await wait_state(api, after, "completed")
            assert sorted(r["seq"] for r in await results(api, after)) == list(range(5))
    assert f"probe job {before} claimed" in worker.output()
    assert f"probe job {after} claimed" in worker.output()


async def test_a_load_run_on_a_worker_changes_rate_through_any_api_process(
    tmp_path: Path, env: dict[str, str], targets_port: int
) -> None:
    """Found by trying it: with workers every load run ran elsewhere, so every change was a
    409 "not running in this process"; the API now asks the process that runs it. Asked at
    once, the change comes before the worker's pool is up, maybe before its claim (found by
    the fresh-clone CI run: a 409 "not running in any process"): it waits for them."""
    runs = "/api/v1/load-runs"
    url = f"http://127.0.0.1:{targets_port}/api/latency"
    spec = {"url": url, "connections": 4, "rate": 100.0, "duration": "3s"}
    async with api_and_worker(tmp_path / "latlab.db", env) as (api, worker):
        created = await api.post(runs, json=spec, params={"start": True})
        run_id = created.json()["id"]
        changed = await api.patch(f"{runs}/{run_id}", json={"rate": 300.0})

        async def on_the_worker() -> bool:
            return ("load", run_id) in (await workers(api)).get(worker.id, [])

        await wait_for(on_the_worker, what="the load run on the worker")

        async def ended() -> bool:
            return bool((await api.get(f"{runs}/{run_id}")).json()["state"] == "completed")

        await wait_for(ended, what="the load run to complete")
        done = (await api.get(f"{runs}/{run_id}")).json()
        gone = await api.patch(f"{runs}/{run_id}", json={"rate": 50.0})
    assert changed.status_code == 200, changed.text
    assert changed.json()["progress"]["rate"] == done["progress"]["rate"] == 300.0
    assert done["stats"]["requests"] > 100 * 3  # it sent faster than it was started at
    assert gone.status_code == 409


async def test_a_job_dispatched_as_the_last_worker_dies_runs_in_the_api_process(
    tmp_path: Path, env: dict[str, str], targets_port: int
) -> None:
    """Found in review: the API still saw the killed worker for up to a lease, sent the job
    to the workers' stream, where nobody read it, and it stayed running with no probe."""
    async with api_and_worker(tmp_path / "latlab.db", env) as (api, worker):
        worker.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(worker.process.wait, 10)
        # Still listed (its entry lives a lease), but the scan its lapse sets off comes
        # before the job is a lease old, when an unclaimed job still counts as just started.
        await asyncio.sleep(1.5)
        experiment_id = await start_experiment(api, targets_port, count=3)
        done = await wait_state(api, experiment_id, "completed", timeout_s=30)
    assert done["done"] == 3
    assert "claimed" not in worker.output()
