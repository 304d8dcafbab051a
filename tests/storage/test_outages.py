"""Outages on real servers: every call raises StoreUnavailable, and the same store recovers.

PostgreSQL and MongoDB are reached through a TcpProxy that the test cuts and restores. SQLite has
no server to lose; its outage is a lock held by another writer ("database is locked").
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import make_url

from latlab.storage import JobState, ProbeResult, Store, StoreUnavailable, open_store
from latlab.storage.records import ProgressUpdate
from proxy import TcpProxy
from services import truncate_postgres

Call = Callable[[], Awaitable[object]]
OUTAGE_BOUND_S = 10.0
T0 = datetime(2026, 1, 2, tzinfo=UTC)


def _calls(store: Store, job_id: int) -> dict[str, Call]:
    result = ProbeResult(job_id, 0, 200, 1.0, T0, T0)
    return {
        "get_job": lambda: store.get_job("probe", job_id),
        "list_jobs": lambda: store.list_jobs("probe"),
        "create_jobs": lambda: store.create_jobs("probe", [{"n": 1}, {"n": 2}]),
        "checkpoint": lambda: store.checkpoint(
            [result], [ProgressUpdate("probe", job_id, {"done": 1})]
        ),
        "set_value": lambda: store.set_value("outage", {"at": 1}),
    }


async def _assert_unavailable(name: str, call: Call) -> None:
    started_s = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        await asyncio.wait_for(call(), OUTAGE_BOUND_S)
    assert raised.value.__cause__ is not None, f"{name}: the driver's error is chained"
    assert time.monotonic() - started_s < OUTAGE_BOUND_S / 2, f"{name} took too long"


async def _eventually(call: Call, timeout_s: float = OUTAGE_BOUND_S) -> None:
    """Call until it succeeds: a client may need a moment to see that the server is back."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        try:
            await call()
            return
        except StoreUnavailable:
            if time.monotonic() > deadline_s:
                raise
            await asyncio.sleep(0.1)


async def _assert_works(store: Store, job_id: int) -> None:
    await store.checkpoint([ProbeResult(job_id, 0, 200, 1.0, T0, T0)], [])
    assert await store.probe_results.count(job_id) == 1
    created = await store.create_jobs("probe", [{"n": 1}, {"n": 2}], state=JobState.RUNNING)
    assert (await store.list_jobs("probe")).total == 1 + len(created)
    await store.set_value("outage", {"over": True})
    assert await store.get_value("outage") == {"over": True}


@asynccontextmanager
async def _proxied(
    kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, TcpProxy]]:
    if kind == "postgres":
        url = make_url(request.getfixturevalue("postgres_url"))
        await truncate_postgres(url.render_as_string(False))
        async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            yield url.set(host=proxy.host, port=proxy.port).render_as_string(False), proxy
        return
    base = urlsplit(request.getfixturevalue("mongo_base_url"))
    async with TcpProxy(base.hostname or "127.0.0.1", base.port or 27017) as proxy:
        # directConnection: reach the server only through the proxy, never at its own address.
        query = "serverSelectionTimeoutMS=500&connectTimeoutMS=500&directConnection=true"
        name = f"t_{secrets.token_hex(4)}"
        yield f"mongodb://{proxy.host}:{proxy.port}/{name}?{query}", proxy


@pytest.mark.parametrize("kind", ["postgres", "mongo"])
async def test_cut_connections_raise_unavailable_then_the_same_store_recovers(
    kind: str, request: pytest.FixtureRequest
) -> None:
    async with _proxied(kind, request) as (url, proxy):
        store = await open_store(url)
        try:
            job = await store.create_job("probe", {})
            await proxy.cut()
            for name, call in _calls(store, job.id).items():
                await _assert_unavailable(name, call)
            await proxy.restore()
            await _eventually(store.ping)
            await _assert_works(store, job.id)
        finally:
            await store.close()


async def test_open_through_a_cut_proxy_raises_unavailable(request: pytest.FixtureRequest) -> None:
    async with _proxied("postgres", request) as (url, proxy):
        await proxy.cut()
        with pytest.raises(StoreUnavailable):
            await open_store(url)


async def test_sqlite_locked_by_another_writer_is_unavailable_for_writes(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = await open_store(f"sqlite+aiosqlite:///{path}?timeout=0.2")
    try:
        job = await store.create_job("probe", {})
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock until rolled back
        try:
            calls = _calls(store, job.id)
            for name in ("create_jobs", "checkpoint", "set_value"):
                await _assert_unavailable(name, calls[name])
            # WAL: readers are not blocked by a writer, so reads are not an outage.
            assert (await store.get_job("probe", job.id)).id == job.id
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await _assert_works(store, job.id)
    finally:
        await store.close()
