"""Worker processes for tests: ``latlab worker`` on a test's store and Redis prefix."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import spawned_serve, wait_for, wait_until_serving
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
    with spawned_worker(db, env, *args, name=name) as spawned:
        yield spawned.announced()


@dataclass
class SpawnedWorker:
    process: subprocess.Popen[bytes]
    log: Path

    def announced(self) -> WorkerProcess:
        """The worker once it has announced itself."""
        return WorkerProcess(self.process, _announced_id(self.process, self.log), self.log)


@contextmanager
def spawned_worker(
    db: Path, env: dict[str, str], *args: str, name: str = "worker"
) -> Iterator[SpawnedWorker]:
    """``latlab_worker`` without the wait for its announcement; killed on the way out."""
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
        yield SpawnedWorker(process, log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@contextmanager
def serve_and_workers(
    db: Path, env: dict[str, str], workers: Mapping[str, Sequence[str]], *, serves: int = 1
) -> Iterator[tuple[list[str], list[WorkerProcess]]]:
    """``serves`` API processes (``--no-targets``) and a worker for each name in ``workers``
    (with its arguments), all started at once, then waited for: the URLs and the workers.
    Together they take about the time of one start, not of each in turn."""
    with ExitStack() as stack:
        apis = [
            stack.enter_context(spawned_serve(db, "--no-targets", env=env)) for _ in range(serves)
        ]
        spawned = [
            stack.enter_context(spawned_worker(db, env, *args, name=name))
            for name, args in workers.items()
        ]
        for process, url in apis:
            wait_until_serving(process, url)
        yield [url for _, url in apis], [worker.announced() for worker in spawned]


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
    names = {f"w{n}": ("--location", where) for n, where in enumerate(locations)}
    with serve_and_workers(db, env, names) as ([url], started):
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:

            async def all_listed() -> bool:
                return {w.id for w in started} <= set(await workers(api))

            await wait_for(all_listed, what="the workers listed")
            yield api, started
