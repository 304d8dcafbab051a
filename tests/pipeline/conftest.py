"""The pipeline tests' queue on every adapter: SQL on SQLite and on the local PostgreSQL, and
Redis Streams on the local Redis (each test under a prefix of its own)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from latlab.pipeline.queue import PipelineQueue, open_queue
from pipeline_files import Reopen
from services import drop_redis_keys, require_redis


async def _empty_postgres_queue_table(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    try:
        await conn.execute("TRUNCATE pipeline_receipts")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Reopen]:
    """Opens a queue on this test's (empty) data; each call after the first is a restart."""
    redis_url, storage_url, prefix = None, "memory://", f"latlab-test-{secrets.token_hex(4)}"
    if request.param == "sqlite":
        storage_url = f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}"
    elif request.param == "postgres":
        storage_url = request.getfixturevalue("postgres_url")
    else:
        redis_url = require_redis()
    opened: list[PipelineQueue] = []

    async def open_one() -> PipelineQueue:
        queue = await open_queue(redis_url=redis_url, storage_url=storage_url, redis_prefix=prefix)
        opened.append(queue)
        return queue

    if request.param == "postgres":  # the session's database: other tests' receipts go
        await (await open_one()).close()  # migrated, so the table exists
        opened.clear()
        await _empty_postgres_queue_table(storage_url)
    try:
        yield open_one
    finally:
        for queue in opened:
            await queue.close()
        if redis_url is not None:
            await drop_redis_keys(redis_url, prefix)
