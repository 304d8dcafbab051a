from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from running import serving, settings_for

from latlab.targets.calibration import MAX_BYTES
from serving.http_client import connect, exchange, get, read_answer, request


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """The targets, in the test's loop, on a free port."""
    async with serving(settings_for()) as bound:
        yield bound


async def test_delay_answers_after_the_delay_asked_for(port: int) -> None:
    started = time.monotonic()
    answer = await exchange(port, get("/delay?ms=80"))
    assert time.monotonic() - started >= 0.08
    assert (answer.status, answer.json()) == (200, {"delayed_ms": 80.0})


async def test_delays_on_separate_connections_run_concurrently(port: int) -> None:
    async with connect(port) as (r1, w1), connect(port) as (r2, w2):
        started = time.monotonic()
        w1.write(get("/delay?ms=200"))
        w2.write(get("/delay?ms=200"))
        await read_answer(r1)
        await read_answer(r2)
    assert time.monotonic() - started < 0.39  # two delays in series would take 0.4 s


@pytest.mark.parametrize(
    "query", ["", "?ms=", "?ms=abc", "?ms=-1", "?ms=30001", "?ms=nan", "?ms=1&ms=2"]
)
async def test_delay_is_validated(port: int, query: str) -> None:
    answer = await exchange(port, get(f"/delay{query}"))
    assert answer.status == 400
    assert "ms" in str(answer.json())


@pytest.mark.parametrize("code", [200, 201, 302, 404, 418, 500, 503, 599])
async def test_status_answers_the_code_asked_for(port: int, code: int) -> None:
    answer = await exchange(port, get(f"/status/{code}"))
    assert (answer.status, answer.json()) == (code, {"status": code})


async def test_status_of_an_unregistered_code_has_an_empty_reason(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get("/status/599"))
        assert (await reader.readuntil(b"\r\n")) == b"HTTP/1.1 599 \r\n"


@pytest.mark.parametrize("code", [204, 304])
async def test_bodiless_statuses_send_no_body(port: int, code: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get(f"/status/{code}") + get("/api/latency"))
        answer = await read_answer(reader)
        assert (answer.status, "content-length" in answer.headers) == (code, False)
        assert (await read_answer(reader)).json() == {"message": "pong"}


async def test_informational_status_is_sent_before_a_final_200(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get("/status/103"))
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 103 Early Hints\r\n\r\n"
        assert (await read_answer(reader)).json() == {"status": 103}


@pytest.mark.parametrize(
    "path", ["/status/99", "/status/600", "/status/101", "/status/x", "/status/"]
)
async def test_status_is_validated(port: int, path: str) -> None:
    assert (await exchange(port, get(path))).status == 400


@pytest.mark.parametrize("size", [0, 1, 1000, 1024 * 1024])
async def test_bytes_answers_that_many_bytes(port: int, size: int) -> None:
    answer = await exchange(port, get(f"/bytes/{size}"))
    assert (answer.status, len(answer.body)) == (200, size)
    assert answer.headers["content-type"] == "application/octet-stream"


async def test_head_bytes_announces_the_size_only(port: int) -> None:
    answer = await exchange(port, request("HEAD", "/bytes/500"), head_only=True)
    assert answer.headers["content-length"] == "500"


@pytest.mark.parametrize("path", [f"/bytes/{MAX_BYTES + 1}", "/bytes/-1", "/bytes/1e3", "/bytes/"])
async def test_bytes_is_validated(port: int, path: str) -> None:
    assert (await exchange(port, get(path))).status == 400
