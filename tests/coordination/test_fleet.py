"""The worker registry on the local Redis: heartbeats, expiry, leaving."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from latlab.coordination.fleet import Fleet, WorkerInfo
from latlab.coordination.redis import open_client
from services import drop_redis_keys, require_redis


@pytest.fixture
async def client() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    url, prefix = require_redis(), f"fleet-{secrets.token_hex(4)}"
    redis = open_client(url, 1.0)
    yield redis, prefix
    await redis.aclose()
    await drop_redis_keys(url, prefix)


def test_a_worker_description_survives_json() -> None:
    info = WorkerInfo("w1", "eu-1", 4, [("probe", 7), ("bot", 3)], datetime(2026, 1, 2, tzinfo=UTC))
    assert WorkerInfo.from_json(info.to_json()) == info


async def test_workers_are_listed_by_id_until_they_leave(
    client: tuple[aioredis.Redis, str],
) -> None:
    fleet = Fleet(client[0], client[1], lease_s=30)
    await fleet.heartbeat(WorkerInfo("w2", "us-1", 1))
    await fleet.heartbeat(WorkerInfo("w1", "eu-1", 4, [("probe", 1)]))
    assert [(w.id, w.location, w.capacity, w.jobs) for w in await fleet.live()] == [
        ("w1", "eu-1", 4, [("probe", 1)]),
        ("w2", "us-1", 1, []),
    ]
    await fleet.leave("w1")
    assert [w.id for w in await fleet.live()] == ["w2"]


async def test_a_worker_whose_lease_expired_is_gone_and_forgotten(
    client: tuple[aioredis.Redis, str],
) -> None:
    redis, prefix = client
    fleet = Fleet(redis, prefix, lease_s=30)
    await fleet.heartbeat(WorkerInfo("w1", "eu-1", 4))
    await redis.delete(f"{prefix}:worker:w1")  # what expiry does, without waiting for it
    assert await fleet.live() == []
    assert await redis.zcard(f"{prefix}:workers") == 0


async def test_the_heartbeat_sets_an_expiry_of_one_lease(
    client: tuple[aioredis.Redis, str],
) -> None:
    redis, prefix = client
    await Fleet(redis, prefix, lease_s=3).heartbeat(WorkerInfo("w1", "eu-1", 4))
    assert 2_000 < await redis.pttl(f"{prefix}:worker:w1") <= 3_000


@pytest.mark.parametrize("entry", ['{"id": "x"}', "not json", '{"id": "x", "capacity": "lots"}'])
async def test_an_entry_that_cannot_be_read_hides_nothing_else(
    client: tuple[aioredis.Redis, str], entry: str
) -> None:
    """Found in review: one stray entry (another version's) made the whole fleet unknown."""
    redis, prefix = client
    fleet = Fleet(redis, prefix, lease_s=30)
    await fleet.heartbeat(WorkerInfo("w1", "eu-1", 4))
    await redis.set(f"{prefix}:worker:x", entry)
    await redis.zadd(f"{prefix}:workers", {"x": 0})
    assert [w.id for w in await fleet.live()] == ["w1"]
