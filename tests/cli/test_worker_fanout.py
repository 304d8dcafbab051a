"""What a worker measures reaches every API process, not one of them: a fan-out over Redis.

Two ``latlab serve`` processes and one ``latlab worker`` on one SQLite store and the local
Redis. Each API process's live feed and ``/metrics`` see the worker's results; the store has
each result once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet import WorkerProcess, fleet_env, serve_and_workers, workers
from harness import CountingTarget, wait_for
from services import require_redis
from sse import Frame, Stream, subscribed

pytestmark = pytest.mark.timeout(120)
COUNT = 20


@asynccontextmanager
async def two_apis_and_a_worker(
    db: Path,
) -> AsyncIterator[tuple[list[httpx.AsyncClient], WorkerProcess]]:
    env = fleet_env(require_redis())
    with serve_and_workers(db, env, {"worker": ("--location", "eu-1")}, serves=2) as (
        [first, second],
        [worker],
    ):
        async with AsyncExitStack() as stack:
            apis = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
                for url in (first, second)
            ]

            async def listed() -> bool:
                return all([worker.id in await workers(api) for api in apis])

            await wait_for(listed, what="the worker listed by both API processes")
            yield apis, worker


def ended(kind: str, job_id: int) -> Any:
    def seen(frames: list[Frame]) -> bool:
        states = [frame.json() for frame in frames if frame.event == "state"]
        return any((s["kind"], s["id"], s["state"]) == (kind, job_id, "completed") for s in states)

    return seen


async def results_heard(feed: Stream, experiment_id: int) -> list[int]:
    frames = await feed.until(ended("probe", experiment_id))
    return sorted(f.json()["seq"] for f in frames if f.event == "result")


async def test_every_api_process_hears_what_a_worker_measures(tmp_path: Path) -> None:
    """An experiment's results on both live feeds and both ``/metrics``, stored once; then a
    load run made on the worker, counted by both ``/metrics``. One set of processes for both:
    each start costs seconds of the suite."""
    async with (
        CountingTarget() as target,
        two_apis_and_a_worker(tmp_path / "latlab.db") as (apis, worker),
    ):
        first, second = apis
        params = {"include": "results"}
        async with (
            subscribed(first, "/api/v1/events", params=params) as feed_first,
            subscribed(second, "/api/v1/events", params=params) as feed_second,
        ):
            spec = {"host": "127.0.0.1", "port": target.port, "interval_s": 0.02, "count": COUNT}
            created = await first.post("/api/v1/experiments", json=spec, params={"start": True})
            experiment_id = created.json()["id"]
            heard = [await results_heard(feed, experiment_id) for feed in (feed_first, feed_second)]
        probes = f'latlab_probe_results_total{{experiment="{experiment_id}",location="",'
        probes += f'status_class="2xx"}} {COUNT}.0'
        await counted_by_both(apis, probes)
        stored = (await second.get(f"/api/v1/experiments/{experiment_id}/results")).json()
        probed = target.requests

        load = {"url": f"http://127.0.0.1:{target.port}/", "requests": 300, "connections": 2}
        made = await first.post(
            "/api/v1/load-runs", json={**load, "locations": ["eu-1"]}, params={"start": True}
        )
        run_id = made.json()["id"]
        await counted_by_both(apis, f'latlab_load_requests_total{{run="{run_id}"}} 300.0')
        [shard] = (await first.get(f"/api/v1/load-runs/{run_id}")).json()["progress"]["shards"]
    assert (created.status_code, made.status_code) == (201, 201), (created.text, made.text)
    assert f"probe job {experiment_id} claimed" in worker.output()  # not run by either API
    assert f"load_shard job {shard} claimed" in worker.output()
    assert heard == [list(range(COUNT))] * 2
    assert (stored["count"], probed) == (COUNT, COUNT)
    assert target.requests == COUNT + 300


async def counted_by_both(apis: list[httpx.AsyncClient], line: str) -> None:
    async def in_both_metrics() -> bool:
        return all([line in (await api.get("/metrics")).text for api in apis])

    await wait_for(in_both_metrics, what=f"both API processes' /metrics to show {line}")
