"""The targets' routes behind the serving kit (HTTP/1.1 itself: ``tests/serving``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from running import serving, settings_for

from serving.http_client import connect, exchange, get, read_answer, request


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """The targets, in the test's loop, on a free port."""
    async with serving(settings_for()) as bound:
        yield bound


async def test_latency_answers_pong_with_headers(port: int) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/api/latency")
    assert response.status_code == 200
    assert response.json() == {"message": "pong"}
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)


async def test_pipelined_answers_keep_request_order_across_the_routes(port: int) -> None:
    requests = [
        get("/delay?ms=60"),
        get("/sum?a=1"),
        get("/delay?ms=1"),
        get("/status/404"),
        request("DELETE", "/api/latency"),
        get("/api/latency"),
    ]
    async with connect(port) as (reader, writer):
        writer.write(b"".join(requests))
        answers = [await read_answer(reader) for _ in requests]
    assert [a.status for a in answers] == [200, 200, 200, 404, 405, 200]
    assert answers[0].json() == {"delayed_ms": 60.0}
    assert answers[1].body == b"Sum: 1.0"


async def test_shutdown_finishes_answers_in_flight() -> None:
    async with serving(settings_for()) as port:
        busy = await asyncio.open_connection("127.0.0.1", port)
        busy[1].write(get("/delay?ms=150"))  # sent first, so read first: busy at shutdown
        assert (await exchange(port, get())).status == 200
    answer = await read_answer(busy[0])
    assert (answer.status, await busy[0].read()) == (200, b"")
    busy[1].close()
