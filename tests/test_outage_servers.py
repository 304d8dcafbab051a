"""The private servers of the outage tests: down means refused, up means the same port again."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from outages import HOST, OwnPostgres, OwnRedis, missing, require_outage_binaries

REFUSED_WITHIN_S = 1.0  # a refused loopback connect takes microseconds; this only bounds hangs


@pytest.fixture(scope="session", autouse=True)
def outage_binaries() -> None:
    """Fails before any server is started if a binary is missing."""
    require_outage_binaries()


@pytest.fixture(scope="module")
def module_postgres() -> Iterator[OwnPostgres]:
    """One cluster for the module: each costs about a second, a test's own data is its own."""
    with OwnPostgres() as pg:
        yield pg


@pytest.fixture
def own_postgres(module_postgres: OwnPostgres) -> OwnPostgres:
    module_postgres.ensure_running()  # a test that failed while it was down must not leak
    return module_postgres


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    with OwnRedis() as rd:
        yield rd


async def assert_refused(port: int) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, port)
    assert time.monotonic() - started < REFUSED_WITHIN_S


@asynccontextmanager
async def pg_connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[aioredis.Redis]:
    # No retries: a refused connection must show at once, not after redis-py's backoff.
    client = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()


async def test_postgres_refuses_while_down_and_keeps_data(own_postgres: OwnPostgres) -> None:
    async with pg_connection(own_postgres.dsn) as conn:
        await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")

    modes: list[Literal["fast", "immediate"]] = ["fast", "immediate"]
    for mode in modes:
        await asyncio.to_thread(own_postgres.stop, mode)
        assert not own_postgres.running
        await assert_refused(own_postgres.port)
        with pytest.raises(ConnectionRefusedError):  # what LatLab's driver sees
            await asyncpg.connect(own_postgres.dsn, timeout=5)

        await own_postgres.astart()
        async with pg_connection(own_postgres.dsn) as conn:
            assert await conn.fetchval("SELECT n FROM kept") == 42, mode


async def test_postgres_outage_cuts_open_connections(own_postgres: OwnPostgres) -> None:
    conn = await asyncpg.connect(own_postgres.dsn, timeout=5)
    try:
        async with own_postgres.outage():
            # Closed when the server went (InterfaceError) or found out now: the query fails.
            with pytest.raises((asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError)):
                await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()
    async with pg_connection(own_postgres.dsn) as again:  # outage() started it again
        assert await again.fetchval("SELECT 1") == 1


async def test_postgres_url_and_create_database(own_postgres: OwnPostgres) -> None:
    assert (
        own_postgres.url == f"postgresql+asyncpg://postgres@127.0.0.1:{own_postgres.port}/postgres"
    )
    url = await asyncio.to_thread(own_postgres.create_database, "fresh")
    assert url == own_postgres.url_for("fresh")
    async with pg_connection(own_postgres.dsn_for("fresh")) as conn:
        assert await conn.fetchval("SELECT current_database()") == "fresh"


def test_postgres_cleanup_also_when_the_test_fails() -> None:
    with pytest.raises(ZeroDivisionError), OwnPostgres() as pg:  # noqa: PT012
        assert pg.running
        _ = 1 / 0
    assert not pg.root.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, pg.port), timeout=1)


async def test_redis_refuses_while_down_then_same_port_empty(own_redis: OwnRedis) -> None:
    async with redis_client(own_redis.url) as client:
        await client.set("key", "value")

    async with own_redis.outage():
        await assert_refused(own_redis.port)
        async with redis_client(own_redis.url) as client:
            with pytest.raises(RedisConnectionError):
                await client.ping()

    async with redis_client(own_redis.url) as client:
        assert await client.ping()
        assert await client.get("key") is None  # no persistence: a restart starts empty


def test_redis_cleanup_also_when_the_test_fails() -> None:
    with pytest.raises(ZeroDivisionError), OwnRedis() as rd:  # noqa: PT012
        assert rd.running
        _ = 1 / 0
    assert not rd.root.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, rd.port), timeout=1)


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_binary_fails_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)  # in CI and on a developer's machine alike: nothing skips
    with pytest.raises(pytest.fail.Exception, match="apt-get install redis-server"):
        missing("redis-server", "redis-server")
