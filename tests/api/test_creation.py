"""Creating jobs: lists all or nothing, ids per kind, and retries made safe by Idempotency-Key."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import STORE_KINDS
from harness import wait_state


def spec(port: int, **fields: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "interval_s": 0.02, "count": 2, **fields}


async def experiment_count(api: httpx.AsyncClient) -> int:
    return int((await api.get("/api/v1/experiments")).json()["count"])


@pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
async def test_a_list_is_created_in_order_and_started_in_one_call(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    specs = [spec(targets_port, count=n) for n in (1, 2, 3)]
    response = await api.post("/api/v1/experiments?start=true", json=specs)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["count"] == 3
    ids = [item["id"] for item in created["data"]]
    assert ids == sorted(ids)
    assert [item["settings"]["count"] for item in created["data"]] == [1, 2, 3]
    assert {item["state"] for item in created["data"]} == {"running"}
    for experiment_id, count in zip(ids, (1, 2, 3), strict=True):
        done = await wait_state(api, experiment_id, "completed")
        assert done["done"] == count


async def test_one_bad_item_rejects_the_whole_list_and_names_it(api: httpx.AsyncClient) -> None:
    specs = [spec(80), spec(80, count=0), spec(80)]
    response = await api.post("/api/v1/experiments", json=specs)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 1, "count"]
    assert await experiment_count(api) == 0


@pytest.mark.parametrize("size", [0, 10_001])
async def test_an_empty_or_too_long_list_is_refused(api: httpx.AsyncClient, size: int) -> None:
    response = await api.post("/api/v1/experiments", json=[spec(80)] * size)
    assert response.status_code == 422
    assert "between 1 and 10000" in response.json()["detail"][0]["msg"]
    assert await experiment_count(api) == 0


@pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
async def test_each_kind_numbers_its_own_jobs(api: httpx.AsyncClient) -> None:
    first_experiment = (await api.post("/api/v1/experiments", json=spec(80))).json()["id"]
    bots = [(await api.post("/start")).json()["bot_id"] for _ in range(2)]
    second_experiment = (await api.post("/api/v1/experiments", json=spec(80))).json()["id"]
    # The seed README's flow: after an experiment, `curl /stop/2` still names the second bot.
    assert (first_experiment, second_experiment, bots) == (1, 2, [1, 2])
    assert (await api.get("/stop/2")).status_code == 204
    assert (await api.get("/active_bots")).json() == {"active_bots": [1]}


async def test_a_retry_with_the_same_key_returns_the_first_answer(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "create-1"}
    first = await api.post("/api/v1/experiments", json=spec(80), headers=headers)
    retry = await api.post("/api/v1/experiments", json=spec(80), headers=headers)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await experiment_count(api) == 1


async def test_a_key_reused_for_another_request_is_refused(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "create-2"}
    await api.post("/api/v1/experiments", json=spec(80), headers=headers)
    other = await api.post("/api/v1/experiments", json=spec(81), headers=headers)
    assert other.status_code == 422
    [error] = other.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert "another request" in error["msg"]
    assert await experiment_count(api) == 1


async def test_bot_starts_are_idempotent_too(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "bot-1"}
    first = await api.post("/start", json={"start_number": 3}, headers=headers)
    retry = await api.post("/start", json={"start_number": 3}, headers=headers)
    v1 = await api.post("/api/v1/bots", json={"start_number": 3}, headers=headers)
    assert retry.json() == first.json() == {"bot_id": 1}
    assert v1.json()["id"] == 2  # keys are per route
    assert (await api.get("/active_bots")).json() == {"active_bots": [2, 1]}


async def test_a_malformed_key_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post("/start", headers={"Idempotency-Key": "x" * 201})
    assert response.status_code == 422
    assert (await api.get("/active_bots")).json() == {"active_bots": []}
