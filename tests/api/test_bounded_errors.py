"""A body full of unknown keys costs little and answers a short 422 naming a few of them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from latlab.api.errors import MAX_ERRORS, install_error_handlers

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
