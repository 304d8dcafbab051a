"""Real backing services for the tests: the local PostgreSQL and a SecantusDB (MongoDB wire) server.

Nothing here skips: a service that cannot be reached fails the tests that need it, with the
command that would start it (``make test`` runs ``scripts/test-services.sh`` first).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

POSTGRES_ADMIN_DSN = os.environ.get(
    "LATLAB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout_s} s")


def _run_admin(*statements: str) -> None:
    # Session fixtures may be set up from inside a running test loop: use a thread of our own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _admin(*statements)).result()


async def _admin(*statements: str) -> None:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN} ({exc}); "
            "run scripts/test-services.sh or `make test`"
        ) from exc
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database for this test session; dropped afterwards."""
    name = f"latlab_test_{os.getpid()}_{secrets.token_hex(3)}"
    _run_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        _run_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# job_counters (per-kind ids) exists from migration 0003 on, which any store opened here runs.
# CASCADE: the tables whose foreign keys name jobs (site_results) are emptied with it.
_TRUNCATE = """
DO $$ BEGIN
  IF to_regclass('histograms') IS NOT NULL THEN TRUNCATE histograms; END IF;
  IF to_regclass('job_counters') IS NOT NULL THEN
    TRUNCATE probe_results, jobs, job_counters CASCADE;
  ELSE TRUNCATE probe_results, jobs CASCADE; END IF;
END $$
"""


async def truncate_postgres(url: str) -> None:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        exists = await conn.fetchval("SELECT to_regclass('jobs') IS NOT NULL")
        if exists:
            await conn.execute(_TRUNCATE)
    finally:
        await conn.close()


def _secantusd() -> str:
    found = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    if not Path(found).exists():
        raise RuntimeError("secantusd-py not found: pip install secantusdb (make install does)")
    return found


@contextmanager
def mongo_server(data_dir: Path) -> Iterator[str]:
    """A SecantusDB server (MongoDB wire protocol) on a free loopback port."""
    port = free_port()
    command = [_secantusd(), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--storage-path", str(data_dir), "--log-level", "WARNING"]
    log = (data_dir.parent / "secantusd.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


REDIS_URL = os.environ.get("LATLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    """The test Redis URL, after checking that it answers."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RuntimeError(
            f"Redis is not reachable at {REDIS_URL} ({exc}); run scripts/test-services.sh"
        ) from exc
    finally:
        client.close()
    return REDIS_URL


async def drop_redis_keys(url: str, prefix: str) -> None:
    """Delete a test's keys (``<prefix>:*``) from the shared Redis."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
