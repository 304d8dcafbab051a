"""Request bodies are limited before anything parses them: 413, at once, the loop never held."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from harness import run_api
from latlab.settings import Settings

MiB = 1024 * 1024
LIMIT_BYTES = 64 * 1024
BULK_LIMIT_BYTES = 256 * 1024


@pytest.fixture
async def api_client() -> AsyncIterator[httpx.AsyncClient]:
    limits = Settings(
        storage_url="memory://",
        freeze_gc=False,
        max_body_bytes=LIMIT_BYTES,
        max_bulk_body_bytes=BULK_LIMIT_BYTES,
    )
    async with run_api(limits) as client:
        yield client


def million_unknown_keys() -> bytes:
    """The issue's body: 12 MB of JSON, one million keys no schema knows."""
    return b"{" + b",".join(b'"key_%07d":0' % i for i in range(1_000_000)) + b"}"


async def chunks(total_bytes: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for _ in range(total_bytes // size):
        yield b" " * size


@asynccontextmanager
async def loop_stalls() -> AsyncIterator[list[float]]:
    """Records the gaps between the ticks of a 5 ms timer: a blocked loop shows as a long gap."""
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    monitor = asyncio.create_task(tick())
    try:
        yield gaps
    finally:
        monitor.cancel()


async def test_a_declared_body_over_the_limit_is_413(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post("/start", content=b" " * (LIMIT_BYTES + 1))
    assert response.status_code == 413
    assert str(LIMIT_BYTES) in response.json()["detail"]
    assert (await api_client.get("/active_bots")).json() == {"active_bots": []}


async def test_a_streamed_body_is_counted_and_refused(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post("/api/v1/bots", content=chunks(4 * LIMIT_BYTES))
    assert response.status_code == 413
    assert (await api_client.get("/active_bots")).json() == {"active_bots": []}


async def test_a_streamed_body_within_the_limit_reaches_the_route(
    api_client: httpx.AsyncClient,
) -> None:
    async def small() -> AsyncIterator[bytes]:
        yield b'{"start_number":'
        yield b" 5}"

    headers = {"Content-Type": "application/json"}
    response = await api_client.post("/start", content=small(), headers=headers)
    assert response.status_code == 201, response.text


async def test_the_bulk_route_takes_more_but_not_without_end(
    api_client: httpx.AsyncClient,
) -> None:
    headers = {"Content-Type": "application/json"}
    padded_empty_list = b"[" + b" " * (2 * LIMIT_BYTES) + b"]"
    bulk = await api_client.post("/api/v1/experiments", content=padded_empty_list, headers=headers)
    assert bulk.status_code == 422  # parsed: an empty list is not a batch
    too_big = b"[" + b" " * BULK_LIMIT_BYTES + b"]"
    refused = await api_client.post("/api/v1/experiments", content=too_big, headers=headers)
    assert refused.status_code == 413
    assert str(BULK_LIMIT_BYTES) in refused.json()["detail"]


def post_in_thread(port: int, head: bytes, body: bytes) -> tuple[bytes, float]:
    """A client outside the loop under test: the status line, and how soon it came after the
    request head (and the first 64 KiB); then the rest of the body, as a client would send it."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sent_at = time.monotonic()
        sock.sendall(head + body[:65536])
        status_line = sock.makefile("rb").readline()
        answered_s = time.monotonic() - sent_at
        sock.sendall(body[65536:])  # the server reads and drops it
    return status_line, answered_s


async def test_a_million_unknown_keys_are_refused_at_once_without_stalling() -> None:
    body = million_unknown_keys()
    assert len(body) > 12 * MiB
    head = (
        b"POST /api/v1/bots HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as client:
        port = client.base_url.port
        assert port is not None
        async with loop_stalls() as gaps:
            status_line, answered_s = await asyncio.to_thread(post_in_thread, port, head, body)
            assert (await client.get("/healthz")).status_code == 200
    assert status_line.startswith(b"HTTP/1.1 413")
    # Before the limit: 36-40 s of parsing with the loop held. Wide margins for a busy machine.
    assert answered_s < 0.5
    assert max(gaps) < 0.25
