"""A body full of unknown keys costs little and answers a short 422 naming a few of them."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from latlab.api import deps
from latlab.api.errors import MAX_ERRORS, install_error_handlers, unknown_keys_error
from latlab.api.v1.experiments import _probe_specs
from latlab.jobs.kinds.probe_spec import probe_limits
from latlab.jobs.manager import MAX_BATCH
from latlab.settings import Settings

UNKNOWN_KEYS = 90_000  # what fits in the 1 MiB body limit


def _unknown(count: int, **known: Any) -> dict[str, Any]:
    return {**known, **{f"k{index:05d}": 0 for index in range(count)}}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/experiments", _unknown(UNKNOWN_KEYS, host="127.0.0.1", port=9)),
        ("/api/v1/experiments", [_unknown(UNKNOWN_KEYS, host="127.0.0.1", port=9)]),
        ("/api/v1/bots", _unknown(UNKNOWN_KEYS)),
        ("/start", _unknown(UNKNOWN_KEYS)),
    ],
    ids=["experiment", "bulk", "v1-bot", "seed-bot"],
)
async def test_many_unknown_keys_get_one_short_error_fast(
    api: httpx.AsyncClient, path: str, body: Any
) -> None:
    began = time.perf_counter()
    response = await api.post(path, json=body)
    elapsed_s = time.perf_counter() - began
    assert response.status_code == 422
    assert len(response.content) < 10_000
    (error,) = response.json()["detail"]
    assert error["type"] == "extra_forbidden"
    assert "k00000" in error["msg"]
    assert f"and {UNKNOWN_KEYS - 10} more" in error["msg"]
    assert elapsed_s < 1.0  # seconds before; wide margin over the ~50 ms it takes


async def test_a_huge_input_is_echoed_back_cut_short(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/bots", json=list(range(UNKNOWN_KEYS)))
    assert response.status_code == 422
    assert len(response.content) < 1_000
    assert response.json()["detail"][0]["input"] == f"<list of {UNKNOWN_KEYS} items>"


async def test_a_422_lists_a_bounded_number_of_errors() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/many")
    async def many() -> None:
        errors = [
            {"type": "x", "loc": ["body", i], "msg": "bad", "input": "y" * 5000}
            for i in range(5000)
        ]
        raise RequestValidationError(errors)

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        detail = (await client.get("/many")).json()["detail"]
    assert len(detail) == MAX_ERRORS + 1
    assert detail[-1]["msg"] == f"and {5000 - MAX_ERRORS} more errors"
    assert all(len(error["input"]) < 200 for error in detail[:-1])


TOO_MANY = 20_001  # the bulk route takes up to MAX_BATCH (10,000)


async def test_a_too_long_batch_is_refused_before_any_item_is_looked_at(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    items_checked = 0

    def counted(*args: Any, **kwargs: Any) -> RequestValidationError | None:
        nonlocal items_checked
        items_checked += 1
        return unknown_keys_error(*args, **kwargs)

    monkeypatch.setattr(deps, "unknown_keys_error", counted)
    response = await api.post("/api/v1/experiments", json=[{}] * TOO_MANY)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["type"], error["loc"], error["input"]) == ("too_long", ["body"], TOO_MANY)
    assert error["msg"] == f"give between 1 and {MAX_BATCH} experiments"
    # Before: every one of the items walked first (5.2M of them held the loop 4 s).
    assert items_checked == 0


async def test_a_full_batch_is_validated_in_slices_between_other_work() -> None:
    settings = Settings(storage_url="memory://")
    body: list[Any] = [{"host": "127.0.0.1", "port": 9}] * MAX_BATCH
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    validated = _probe_specs(settings, probe_limits(settings), body)
    specs = await validated if inspect.isawaitable(validated) else validated
    other.cancel()
    assert len(specs) == MAX_BATCH
    assert turns >= MAX_BATCH // 500 - 1  # the loop ran between slices (0 before: 0.15 s held)


async def test_a_bad_item_deep_in_a_batch_is_named_and_nothing_is_created(
    api: httpx.AsyncClient,
) -> None:
    good = {"host": "127.0.0.1", "port": 9, "interval_s": 1, "count": 1}
    body = [good] * 7000
    body[6789] = {**good, "count": 0}
    response = await api.post("/api/v1/experiments", json=body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", 6789, "count"]
    unknown = [good] * 600 + [{**good, "colour": "red"}]
    refused = await api.post("/api/v1/experiments", json=unknown)
    assert refused.json()["detail"][0]["loc"] == ["body", 600]
    assert (await api.get("/api/v1/experiments")).json()["count"] == 0
