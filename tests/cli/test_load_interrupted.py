"""``latlab serve`` killed during a load run: its workers die with it, and after a restart the
run is ``failed``/``interrupted`` with the seconds it stored before the kill. Stopped by
SIGTERM instead, the run drains and goes on after the restart, exactly."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx

from harness import CountingTarget, latlab_serve, wait_for
from load_workers import alive, load_workers

RUNS = "/api/v1/load-runs"


async def load_run(api: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    response = await api.get(f"{RUNS}/{run_id}")
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


async def test_sigkill_during_a_run_kills_its_workers_and_a_restart_marks_it_interrupted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "latlab.db"
    async with CountingTarget() as target:
        spec = {"url": f"http://127.0.0.1:{target.port}/", "rate": 200, "duration": "60s"}
        with latlab_serve(db, "--no-targets") as (process, url):
            async with httpx.AsyncClient(base_url=url) as api:
                created = await api.post(RUNS, json={**spec, "workers": 2}, params={"start": True})
                run_id = created.json()["id"]

                async def two_seconds() -> bool:
                    return int((await load_run(api, run_id))["progress"]["seconds"]) >= 2

                await wait_for(two_seconds, 30, "two stored seconds")
            workers = load_workers(process.pid)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

            async def workers_gone() -> bool:
                return alive(workers) == []

            await wait_for(workers_gone, 10, "the load workers to die with the API")
            # One exchange of our own: the target has read what the workers sent before dying.
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{target.port}/")
            sent_after_kill = target.requests
        with latlab_serve(db, "--no-targets") as (_, url):
            async with httpx.AsyncClient(base_url=url) as api:

                async def failed() -> bool:
                    return bool((await load_run(api, run_id))["state"] == "failed")

                await wait_for(failed, 30, f"load run {run_id} to fail")
                run = await load_run(api, run_id)
                page = (await api.get(f"{RUNS}/{run_id}/seconds", params={"limit": 1000})).json()
        assert target.requests == sent_after_kill  # nothing kept loading the target
    assert len(workers) == 2
    assert run["error"] == "interrupted"
    assert run["progress"]["seconds"] == page["count"] >= 2
    assert [row["second"] for row in page["data"]] == list(range(page["count"]))
    assert run["stats"]["requests"] == sum(row["requests"] for row in page["data"]) > 0


async def test_sigterm_during_a_run_drains_it_and_a_restart_goes_on_to_exactly_n(
    tmp_path: Path,
) -> None:
    """A graceful stop stores every answer (those in flight too) and marks the drain, so the
    next start resumes the run as after a pause: the target counts exactly its requests."""
    db = tmp_path / "latlab.db"
    async with CountingTarget(delay_s=0.02) as target:
        spec = {"url": f"http://127.0.0.1:{target.port}/", "rate": 300, "requests": 600}
        with latlab_serve(db, "--no-targets") as (process, url):
            async with httpx.AsyncClient(base_url=url) as api:
                created = await api.post(
                    RUNS, json={**spec, "connections": 8}, params={"start": True}
                )
                run_id = created.json()["id"]

                async def one_second() -> bool:
                    return int((await load_run(api, run_id))["progress"]["seconds"]) >= 1

                await wait_for(one_second, 30, "a stored second")
            process.terminate()  # the target answers what is in flight meanwhile
            assert await asyncio.to_thread(process.wait, 15) == 0
        with latlab_serve(db, "--no-targets") as (_, url):
            async with httpx.AsyncClient(base_url=url) as api:
                at_restart = (await load_run(api, run_id))["progress"]["requests"]

                async def ended() -> bool:
                    return bool((await load_run(api, run_id))["state"] != "running")

                await wait_for(ended, 30, f"load run {run_id} to end")
                run = await load_run(api, run_id)
    assert 0 < at_restart < 600  # stopped midway: the restart sent the rest
    assert (run["state"], run["error"]) == ("completed", None)
    assert run["stats"]["requests"] == target.requests == 600


async def test_a_drain_that_gave_up_on_answers_is_not_resumed(tmp_path: Path) -> None:
    """Found in review: a stop's drain that cut requests off (answers slower than its 2 s)
    was still marked drained, so the restart sent them again. Now the run fails as
    interrupted, its target having seen what it never counted."""
    db = tmp_path / "latlab.db"
    async with CountingTarget(delay_s=3.0) as target:
        spec = {"url": f"http://127.0.0.1:{target.port}/", "requests": 12, "connections": 4}
        with latlab_serve(db, "--no-targets") as (process, url):
            async with httpx.AsyncClient(base_url=url) as api:
                created = await api.post(RUNS, json=spec, params={"start": True})
                run_id = created.json()["id"]

                async def sending() -> bool:
                    return target.requests == 4

                await wait_for(sending, 30, "the first four requests at the target")
            process.terminate()
            assert await asyncio.to_thread(process.wait, 15) == 0
        with latlab_serve(db, "--no-targets") as (_, url):
            async with httpx.AsyncClient(base_url=url) as api:

                async def ended() -> bool:
                    return bool((await load_run(api, run_id))["state"] != "running")

                await wait_for(ended, 30, f"load run {run_id} to end")
                run = await load_run(api, run_id)
        assert target.requests == 4  # nothing sent again
    assert (run["state"], run["error"]) == ("failed", "interrupted")
