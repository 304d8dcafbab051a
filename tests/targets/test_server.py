from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from latlab.targets.server import MAX_URL_BYTES, serve_targets, start_targets

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Response = tuple[int, dict[str, str], bytes]


def get(path: str = "/api/latency", extra: str = "", version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    size = 0 if head_only else int(headers["content-length"])
    return int(status_line.split()[1]), headers, await reader.readexactly(size)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A targets server in the test's loop; fails the test if anything reaches the loop."""
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    server = await start_targets("127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        loop.set_exception_handler(None)
    assert escaped == []


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[Streams]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


async def test_latency_answers_pong_with_headers(port: int) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/api/latency")
    assert response.status_code == 200
    assert response.json() == {"message": "pong"}
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)


async def test_keep_alive_serves_several_requests_on_one_connection(port: int) -> None:
    async with connect(port) as (reader, writer):
        for _ in range(3):
            writer.write(get())
            status, headers, body = await read_response(reader)
            assert (status, json.loads(body)) == (200, {"message": "pong"})
            assert headers["connection"] == "keep-alive"


async def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    requests = [get(), get("/nope"), b"DELETE /api/latency HTTP/1.1\r\nHost: t\r\n\r\n", get()]
    async with connect(port) as (reader, writer):
        writer.write(b"".join(requests))
        statuses = [(await read_response(reader))[0] for _ in requests]
    assert statuses == [200, 404, 405, 200]


async def test_request_split_into_single_bytes_is_parsed(port: int) -> None:
    async with connect(port) as (reader, writer):
        for byte in get("/api/latency?x=1"):
            writer.write(bytes([byte]))
            await writer.drain()
        assert (await read_response(reader))[0] == 200


async def test_connection_close_is_honoured(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get(extra="Connection: close\r\n") + get())
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (200, "close")
        assert await reader.read() == b""


@pytest.mark.parametrize(
    ("extra", "stays_open"), [("", False), ("Connection: keep-alive\r\n", True)]
)
async def test_http10_keeps_alive_only_on_request(port: int, extra: str, stays_open: bool) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get(extra=extra, version="1.0"))
        assert (await read_response(reader))[0] == 200
        if stays_open:
            writer.write(get(extra=extra, version="1.0"))
            assert (await read_response(reader))[0] == 200
        else:
            assert await reader.read() == b""


async def test_unknown_path_is_404(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get("/missing"))
        status, headers, body = await read_response(reader)
    assert (status, json.loads(body)) == (404, {"detail": "Not Found"})
    assert headers["content-type"] == "application/json"


async def test_non_get_is_405_with_allow(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(
            b"POST /api/latency HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc" + get()
        )
        status, headers, _ = await read_response(reader)
        assert (status, headers["allow"]) == (405, "GET")
        assert (await read_response(reader))[0] == 200


async def test_head_response_carries_no_body(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(b"HEAD /missing HTTP/1.1\r\nHost: t\r\n\r\n" + get())
        status, headers, _ = await read_response(reader, head_only=True)
        assert (status, int(headers["content-length"])) == (404, 22)
        # Had a body been sent, it would be read here as the next status line.
        assert (await read_response(reader))[0] == 200


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT A REQUEST\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        get("/" + "a" * MAX_URL_BYTES),
    ],
)
async def test_malformed_request_gets_400_and_close(port: int, request_bytes: bytes) -> None:
    async with connect(port) as (reader, writer):
        writer.write(request_bytes)
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (400, "close")
        assert await reader.read() == b""


async def test_upgrade_request_is_answered_then_closed(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get(extra="Connection: Upgrade\r\nUpgrade: websocket\r\n"))
        assert (await read_response(reader))[0] == 200
        assert await reader.read() == b""


async def test_serve_targets_closes_connections_when_cancelled() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    task = asyncio.create_task(serve_targets("127.0.0.1", free_port))
    streams = None
    for _ in range(500):  # bounded wait for the listener to come up
        try:
            streams = await asyncio.open_connection("127.0.0.1", free_port)
            break
        except ConnectionRefusedError:
            await asyncio.sleep(0.01)
    assert streams is not None
    reader, writer = streams
    writer.write(get())
    assert (await read_response(reader))[0] == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", free_port)
