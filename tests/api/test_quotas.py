"""Quotas: running experiments, running bots, creates a minute; past one, 429 and nothing done."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import run_api
from latlab.api.quotas import CreateRate
from latlab.jobs.quota import QuotaExceeded
from latlab.settings import Settings

# Running, never done: probes of a closed port a minute apart.
SPEC: dict[str, Any] = {"host": "127.0.0.1", "port": 9, "interval_s": 60, "count": 10}


@asynccontextmanager
async def api_with(tmp_path: Path, **limits: int) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}"
    settings = Settings.model_validate({"storage_url": url, "freeze_gc": False, **limits})
    async with run_api(settings) as api:
        yield api


def assert_refused(response: httpx.Response, setting: str, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert (body["setting"], body["limit"]) == (setting, limit)
    assert setting in body["detail"]


def refused_by(limit: int) -> tuple[str, int]:
    return "LATLAB_MAX_RUNNING_JOBS", limit


async def test_the_bot_past_max_bots_is_refused_and_not_started(tmp_path: Path) -> None:
    async with api_with(tmp_path, max_bots=3) as api:
        ids = [(await api.post("/start")).json()["bot_id"] for _ in range(3)]
        assert_refused(await api.post("/start"), "LATLAB_MAX_BOTS", 3)
        assert_refused(await api.post("/api/v1/bots", json={}), "LATLAB_MAX_BOTS", 3)
        assert (await api.get("/active_bots")).json() == {"active_bots": ids[::-1]}
        assert (await api.get("/api/v1/bots")).json()["count"] == 3

        assert (await api.get(f"/stop/{ids[0]}")).status_code == 204
        assert (await api.post("/api/v1/bots", json={})).status_code == 201


async def test_running_experiments_past_the_quota_are_refused_however_started(
    tmp_path: Path,
) -> None:
    async with api_with(tmp_path, max_running_jobs=2) as api:
        for _ in range(2):
            created = await api.post("/api/v1/experiments?start=true", json=SPEC)
            assert created.status_code == 201
        refused = await api.post("/api/v1/experiments?start=true", json=SPEC)
        assert_refused(refused, *refused_by(2))
        idle = (await api.post("/api/v1/experiments", json=SPEC)).json()  # not started: fine
        assert idle["state"] == "created"

        started = await api.post(f"/api/v1/experiments/{idle['id']}/start")
        assert_refused(started, *refused_by(2))
        params = {"state": "start", "experiment_id": idle["id"]}
        assert_refused(await api.post("/manage_experiment", params=params), *refused_by(2))
        assert (await api.get(f"/api/v1/experiments/{idle['id']}")).json()["state"] == "created"
        listed = (await api.get("/api/v1/experiments", params={"state": "running"})).json()
        assert listed["count"] == 2


async def test_a_resume_past_the_quota_is_refused(tmp_path: Path) -> None:
    async with api_with(tmp_path, max_running_jobs=1) as api:
        first = (await api.post("/api/v1/experiments?start=true", json=SPEC)).json()
        await api.post(f"/api/v1/experiments/{first['id']}/pause")
        await api.post("/api/v1/experiments?start=true", json=SPEC)
        resumed = await api.post(f"/api/v1/experiments/{first['id']}/resume")
        assert_refused(resumed, *refused_by(1))


async def test_a_bulk_create_past_the_quota_creates_nothing(tmp_path: Path) -> None:
    async with api_with(tmp_path, max_running_jobs=3) as api:
        response = await api.post("/api/v1/experiments?start=true", json=[SPEC] * 4)
        assert_refused(response, *refused_by(3))
        assert (await api.get("/api/v1/experiments")).json()["count"] == 0
        fits = await api.post("/api/v1/experiments?start=true", json=[SPEC] * 3)
        assert fits.status_code == 201


async def test_the_quota_counts_the_jobs_other_processes_run(tmp_path: Path) -> None:
    async with api_with(tmp_path, max_bots=3) as first, api_with(tmp_path, max_bots=3) as second:
        for _ in range(2):
            assert (await first.post("/start")).status_code == 201
        assert (await second.post("/start")).status_code == 201
        assert_refused(await second.post("/start"), "LATLAB_MAX_BOTS", 3)


async def test_the_create_past_the_rate_is_refused_per_client(tmp_path: Path) -> None:
    params: dict[str, str | int] = {"host": "127.0.0.1", "port": 9, "interval": 1, "count": 1}
    async with api_with(tmp_path, create_rate_per_min=5) as api:
        for _ in range(5):
            assert (await api.post("/create_experiment", params=params)).status_code == 200
        refused = await api.post("/create_experiment", params=params)
        assert_refused(refused, "LATLAB_CREATE_RATE_PER_MIN", 5)
        assert_refused(await api.post("/start"), "LATLAB_CREATE_RATE_PER_MIN", 5)
        bulk = await api.post("/api/v1/experiments", json=[SPEC] * 3)
        assert_refused(bulk, "LATLAB_CREATE_RATE_PER_MIN", 5)
        assert len((await api.get("/list_experiments")).json()) == 5

    async with api_with(tmp_path, create_rate_per_min=5) as api:
        bulk = await api.post("/api/v1/experiments", json=[SPEC] * 3)
        assert bulk.status_code == 201  # a bulk create counts once
        assert (await api.get("/api/v1/experiments")).json()["count"] == 8


async def test_without_a_token_made_up_authorization_headers_share_the_address_quota(
    tmp_path: Path,
) -> None:
    async with api_with(tmp_path, create_rate_per_min=3) as api:
        for _ in range(3):
            assert (await api.post("/api/v1/experiments", json=SPEC)).status_code == 201
        for made_up in ["x0", "x1", "Bearer x2", "x3", "x4"]:
            headers = {"Authorization": made_up}
            refused = await api.post("/api/v1/experiments", json=SPEC, headers=headers)
            assert_refused(refused, "LATLAB_CREATE_RATE_PER_MIN", 3)
        assert (await api.get("/api/v1/experiments")).json()["count"] == 3


async def test_with_a_token_every_spelling_and_the_login_cookie_share_one_quota(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}"
    limits = {"storage_url": url, "freeze_gc": False, "create_rate_per_min": 4}
    settings = Settings.model_validate({**limits, "api_token": "tok"})
    async with run_api(settings) as api:
        for spelling in ["Bearer tok", "bearer tok", "BEARER tok", "Bearer  tok"]:
            headers = {"Authorization": spelling}
            created = await api.post("/api/v1/experiments", json=SPEC, headers=headers)
            assert created.status_code == 201, spelling
        refused = await api.post(
            "/api/v1/experiments", json=SPEC, headers={"Authorization": "bEaReR tok"}
        )
        assert_refused(refused, "LATLAB_CREATE_RATE_PER_MIN", 4)
        assert (await api.post("/ui/login", data={"token": "tok"})).status_code == 303
        assert_refused(await api.post("/start"), "LATLAB_CREATE_RATE_PER_MIN", 4)


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 6000.0  # the start of a window

    def __call__(self) -> float:
        return self.now_s


def test_the_rate_slides_and_says_when_to_retry() -> None:
    clock = FakeClock()
    rate = CreateRate(clock)
    for _ in range(5):
        rate.admit("a", per_min=5)
    with pytest.raises(QuotaExceeded) as refused:
        rate.admit("a", per_min=5)
    # 5 creates now: the next fits once they weigh at most 4, 12 s into the next window.
    assert refused.value.retry_after_s == 72
    clock.now_s += 71
    with pytest.raises(QuotaExceeded):
        rate.admit("a", per_min=5)
    clock.now_s += 1
    rate.admit("a", per_min=5)


def test_the_rate_forgets_the_least_recent_clients_past_its_size() -> None:
    rate = CreateRate(FakeClock(), max_clients=100)
    for client in range(1000):
        rate.admit(f"client-{client}", per_min=1)
    assert len(rate) == 100
    rate.admit("client-0", per_min=1)  # forgotten: counts from zero again
    with pytest.raises(QuotaExceeded):
        rate.admit("client-999", per_min=1)
