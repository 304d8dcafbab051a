"""Worker processes for tests: ``latlab worker`` on a test's store and Redis prefix."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import latlab_serve, wait_for
from services import require_redis

UP = re.compile(rb"worker (\w+) up")


def fleet_env(redis_url: str) -> dict[str, str]:
    """A Redis prefix of the test's own, so no other test's workers take its jobs."""
    return {"LATLAB_REDIS_URL": redis_url, "LATLAB_REDIS_PREFIX": f"fleet-{secrets.token_hex(4)}"}


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    id: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def latlab_worker(
    db: Path, env: dict[str, str], *args: str, name: str = "worker"
) -> Iterator[WorkerProcess]:
    """``python -m latlab worker`` on SQLite ``db``; returns once it has announced itself."""
    environment = {**os.environ, "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{db}", **env}
    log = db.parent / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "latlab", "worker", *args],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield WorkerProcess(process, _announced_id(process, log), log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _announced_id(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := UP.search(log.read_bytes())) is not None:
            return found.group(1).decode()
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.02)
    raise TimeoutError(f"worker did not start in {timeout_s} s: {log.read_text()}")


async def workers(api: httpx.AsyncClient) -> dict[str, list[tuple[str, int]]]:
    """The live workers by id, with their jobs, as ``GET /api/v1/workers`` answers."""
    response = await api.get("/api/v1/workers")
    response.raise_for_status()
    return {
        worker["id"]: [(job["kind"], job["id"]) for job in worker["jobs"]]
        for worker in response.json()["data"]
    }


async def listed(api: httpx.AsyncClient, worker_id: str) -> bool:
    """Whether ``GET /api/v1/workers`` lists the worker."""
    return worker_id in await workers(api)


async def holder(api: httpx.AsyncClient, key: tuple[str, int]) -> str | None:
    """The live worker that runs ``key`` now, if any."""
    return next((wid for wid, jobs in (await workers(api)).items() if key in jobs), None)


@asynccontextmanager
async def api_and_workers(
    db: Path, *locations: str
) -> AsyncIterator[tuple[httpx.AsyncClient, list[WorkerProcess]]]:
    """A worker at each of ``locations`` (in that order)."""
    env = fleet_env(require_redis())
    with ExitStack() as stack:
        _, url = stack.enter_context(latlab_serve(db, "--no-targets", env=env))
        started = [
            stack.enter_context(latlab_worker(db, env, "--location", where, name=f"w{n}"))
            for n, where in enumerate(locations)
        ]
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:

            async def all_listed() -> bool:
                return {w.id for w in started} <= set(await workers(api))

            await wait_for(all_listed, what="the workers listed")
            yield api, started
