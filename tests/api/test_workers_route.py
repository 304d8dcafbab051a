"""``GET /api/v1/workers``: the fleet as the control API sees it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest

from harness import run_api
from latlab.coordination.fleet import Fleet, WorkerInfo
from latlab.coordination.redis import open_client
from latlab.settings import Settings
from outages import OwnRedis
from services import drop_redis_keys, require_redis


async def test_without_redis_there_is_no_fleet() -> None:
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        response = await api.get("/api/v1/workers")
    assert response.status_code == 200
    assert response.json() == {"data": []}


async def test_live_workers_are_listed_with_their_jobs() -> None:
    url, prefix = require_redis(), f"route-{secrets.token_hex(4)}"
    client = open_client(url, 1.0)
    beat = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    try:
        fleet = Fleet(client, prefix, lease_s=30)
        await fleet.heartbeat(WorkerInfo("w1", "eu-1", 4, [("probe", 7), ("bot", 2)], beat))
        settings = Settings(storage_url="memory://", redis_url=url, redis_prefix=prefix)
        async with run_api(settings.model_copy(update={"freeze_gc": False})) as api:
            listed = (await api.get("/api/v1/workers")).json()["data"]
            metrics = (await api.get("/metrics")).text
            await fleet.leave("w1")
            after = (await api.get("/api/v1/workers")).json()["data"]
            metrics_after = (await api.get("/metrics")).text
    finally:
        await client.aclose()
        await drop_redis_keys(url, prefix)
    assert listed == [
        {
            "id": "w1",
            "location": "eu-1",
            "capacity": 4,
            "jobs": [{"kind": "probe", "id": 7}, {"kind": "bot", "id": 2}],
            "last_heartbeat": "2026-12-04T12:00:00Z",
        }
    ]
    assert after == []
    assert 'latlab_worker_jobs{location="eu-1",worker="w1"} 2.0' in metrics
    assert 'latlab_worker_capacity{location="eu-1",worker="w1"} 4.0' in metrics
    assert 'latlab_worker_heartbeat_age_seconds{location="eu-1",worker="w1"}' in metrics
    assert 'worker="w1"' not in metrics_after


async def test_redis_away_answers_503_with_retry_after() -> None:
    with OwnRedis() as redis:
        settings = Settings(storage_url="memory://", redis_url=redis.url, freeze_gc=False)
        async with run_api(settings) as api:
            redis.stop()
            response = await api.get("/api/v1/workers")
            redis.start()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "Redis is unavailable" in response.json()["detail"]


async def test_a_location_without_workers_is_refused_and_nothing_is_created() -> None:
    spec = {"host": "127.0.0.1", "port": 9, "location": "eu-1"}
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        answers = [
            await api.post("/api/v1/experiments", json=spec),
            await api.post("/api/v1/bots", json={"start_number": 1, "location": "eu-1"}),
            await api.post("/start", json={"location": "eu-1"}),
        ]
        created = [
            (await api.get(path)).json()["count"]
            for path in ("/api/v1/experiments", "/api/v1/bots")
        ]
    assert [answer.status_code for answer in answers] == [422, 422, 422]
    assert all("a location needs workers" in answer.text for answer in answers)
    assert created == [0, 0]


async def test_a_bot_pinned_where_no_worker_is_up_waits_for_one() -> None:
    url, prefix = require_redis(), f"route-{secrets.token_hex(4)}"
    settings = Settings(storage_url="memory://", redis_url=url, redis_prefix=prefix)
    async with run_api(settings.model_copy(update={"freeze_gc": False})) as api:
        created = await api.post("/api/v1/bots", json={"start_number": 1, "location": "us-1"})
        listed = (await api.get("/api/v1/bots")).json()["data"]
    await drop_redis_keys(url, prefix)
    assert created.status_code == 201, created.text
    assert created.json()["waiting_for"] == listed[0]["waiting_for"] == "us-1"
    assert listed[0]["location"] == "us-1"
    assert listed[0]["last_number"] is None


async def test_a_location_is_a_plain_name() -> None:
    url, prefix = require_redis(), f"route-{secrets.token_hex(4)}"
    settings = Settings(storage_url="memory://", redis_url=url, redis_prefix=prefix)
    async with run_api(settings.model_copy(update={"freeze_gc": False})) as api:
        answers = [
            await api.post(
                "/api/v1/experiments", json={"host": "127.0.0.1", "port": 9, "location": name}
            )
            for name in ("eu:1", "eu 1", "", "x" * 65, "eu-1.b_2")
        ]
    await drop_redis_keys(url, prefix)
    assert [a.status_code for a in answers] == [422, 422, 422, 422, 201]
    assert answers[-1].json()["settings"]["location"] == "eu-1.b_2"


@pytest.mark.parametrize(
    ("split", "field"), [({"shards": 2}, "shards"), ({"locations": ["eu-1", "us-1"]}, "locations")]
)
async def test_a_load_run_split_over_workers_without_redis_is_refused_and_nothing_is_created(
    split: dict[str, object], field: str
) -> None:
    spec = {"url": "http://127.0.0.1:9/", "connections": 4, **split}
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        answer = await api.post("/api/v1/load-runs", json=spec, params={"start": True})
        created = (await api.get("/api/v1/load-runs")).json()["count"]
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", field]
    assert "shards need workers" in answer.text
    assert created == 0


async def test_locations_without_workers_are_refused_and_nothing_is_created() -> None:
    spec = {"host": "127.0.0.1", "port": 9, "locations": ["eu-1", "us-1"]}
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        answer = await api.post("/api/v1/experiments", json=spec)
        created = (await api.get("/api/v1/experiments")).json()["count"]
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "locations"]
    assert "locations need workers" in answer.text
    assert created == 0


@asynccontextmanager
async def experiment_at_two_locations() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An API with Redis (no worker up) and a started experiment at eu-1 and us-1: its path."""
    url, prefix = require_redis(), f"route-{secrets.token_hex(4)}"
    settings = Settings(storage_url="memory://", redis_url=url, redis_prefix=prefix)
    spec = {"host": "127.0.0.1", "port": 9, "locations": ["eu-1", "us-1"], "count": 3}
    try:
        async with run_api(settings.model_copy(update={"freeze_gc": False})) as api:
            created = await api.post("/api/v1/experiments", json=spec, params={"start": True})
            assert created.status_code == 201, created.text
            yield api, f"/api/v1/experiments/{created.json()['id']}"
    finally:
        await drop_redis_keys(url, prefix)


async def test_an_experiment_at_two_locations_waits_for_each_and_answers_per_location() -> None:
    async with experiment_at_two_locations() as (api, path):
        got = (await api.get(path)).json()
        answers = {
            "unknown location": await api.get(f"{path}/results", params={"location": "ap-1"}),
            "stats": await api.get(f"{path}/stats", params={"location": "eu-1"}),
            "resume of all": await api.get(f"{path}/events", params={"after": 0}),
        }
    assert (got["waiting_for"], got["by_location"]) == ("eu-1", {"eu-1": 0, "us-1": 0})
    assert answers["unknown location"].status_code == 422
    assert "no location 'ap-1': its locations are eu-1, us-1" in answers["unknown location"].text
    assert (answers["stats"].status_code, answers["stats"].json()["count"]) == (200, 0)
    assert answers["resume of all"].status_code == 422
    assert answers["resume of all"].json()["detail"][0]["loc"] == ["query", "after"]


async def test_the_feed_of_every_location_ends_with_an_id_and_a_reconnect_then_gets_204() -> None:
    """Found in review: that feed's results carry no id, so a browser never sent
    Last-Event-ID, never got the 204, and reconnected to an ended experiment forever."""
    async with experiment_at_two_locations() as (api, path):
        await api.post(f"{path}/stop")
        ended = await api.get(f"{path}/events")
        reconnect = await api.get(f"{path}/events", headers={"Last-Event-ID": "-1"})
    assert "event: state" in ended.text
    assert "id: -1" in ended.text
    assert reconnect.status_code == 204
