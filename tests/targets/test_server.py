from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from clients import connect, exchange, get, read_answer, request
from running import serving, settings_for

from latlab.targets.counters import CELLS, CountsTable
from latlab.targets.protocol import (
    MAX_BODY_BYTES,
    MAX_PENDING,
    MAX_URL_BYTES,
    Connections,
    TargetProtocol,
)
from latlab.targets.routes import Router, route
from latlab.targets.server import TargetsServer, start_targets
from latlab.targets.tickets import MemoryTickets
from latlab.targets.wire import Request, Response, text_response


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


async def test_keep_alive_serves_several_requests_on_one_connection(port: int) -> None:
    async with connect(port) as (reader, writer):
        for _ in range(3):
            writer.write(get())
            answer = await read_answer(reader)
            assert (answer.status, answer.json()) == (200, {"message": "pong"})
            assert answer.headers["connection"] == "keep-alive"


async def test_pipelined_answers_keep_request_order_around_slow_handlers(port: int) -> None:
    requests = [
        get("/delay?ms=60"),
        get("/sum?a=1"),
        get("/delay?ms=1"),
        get("/status/404"),
        request("DELETE", "/api/latency"),
        get(),
    ]
    async with connect(port) as (reader, writer):
        writer.write(b"".join(requests))
        answers = [await read_answer(reader) for _ in requests]
    assert [a.status for a in answers] == [200, 200, 200, 404, 405, 200]
    assert answers[0].json() == {"delayed_ms": 60.0}
    assert answers[1].body == b"Sum: 1.0"


async def test_a_client_pipelining_past_the_limit_is_paused_then_served(port: int) -> None:
    count = MAX_PENDING * 3
    async with connect(port) as (reader, writer):
        writer.write(get("/delay?ms=0") * count)
        answers = [await read_answer(reader) for _ in range(count)]
    assert {a.status for a in answers} == {200}


async def test_request_split_into_single_bytes_is_parsed(port: int) -> None:
    async with connect(port) as (reader, writer):
        for byte in get("/api/latency?x=1"):
            writer.write(bytes([byte]))
            await writer.drain()
        assert (await read_answer(reader)).status == 200


async def test_connection_close_is_honoured_and_later_requests_dropped(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get(extra="Connection: close\r\n") + get())
        answer = await read_answer(reader)
        assert (answer.status, answer.headers["connection"]) == (200, "close")
        assert await reader.read() == b""


async def test_connection_close_behind_a_slow_answer_closes_after_it(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get("/delay?ms=20", extra="Connection: close\r\n") + get())
        answer = await read_answer(reader)
        assert (answer.status, answer.headers["connection"]) == (200, "close")
        assert await reader.read() == b""


@pytest.mark.parametrize(
    ("extra", "stays_open"), [("", False), ("Connection: keep-alive\r\n", True)]
)
async def test_http10_keeps_alive_only_on_request(port: int, extra: str, stays_open: bool) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get(extra=extra, version="1.0"))
        assert (await read_answer(reader)).status == 200
        if stays_open:
            writer.write(get(extra=extra, version="1.0"))
            assert (await read_answer(reader)).status == 200
        else:
            assert await reader.read() == b""


async def test_wrong_method_is_405_with_allow(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(request("POST", "/api/latency", body=b"abc") + get())
        answer = await read_answer(reader)
        assert (answer.status, answer.headers["allow"]) == (405, "GET, HEAD")
        assert (await read_answer(reader)).status == 200


async def test_head_response_carries_no_body(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(request("HEAD", "/status/404") + get())
        answer = await read_answer(reader, head_only=True)
        assert (answer.status, int(answer.headers["content-length"])) == (404, 14)
        # Had a body been sent, it would be read here as the next status line.
        assert (await read_answer(reader)).status == 200


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (get("/" + "a" * MAX_URL_BYTES), 414),
        (
            request("POST", "/", {"Content-Type": "application/json"}, b" " * (MAX_BODY_BYTES + 1)),
            413,
        ),
    ],
)
async def test_malformed_or_oversized_request_is_answered_then_closed(
    port: int, raw: bytes, status: int
) -> None:
    async with connect(port) as (reader, writer):
        writer.write(raw)
        answer = await read_answer(reader)
        assert (answer.status, answer.headers["connection"]) == (status, "close")
        assert await reader.read() == b""


async def test_error_behind_a_slow_answer_waits_its_turn(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get("/delay?ms=20") + b"NOT A REQUEST\r\n\r\n")
        assert (await read_answer(reader)).status == 200
        assert (await read_answer(reader)).status == 400
        assert await reader.read() == b""


async def test_upgrade_request_is_answered_then_closed(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get(extra="Connection: Upgrade\r\nUpgrade: websocket\r\n"))
        assert (await read_answer(reader)).status == 200
        assert await reader.read() == b""


async def test_upgrade_with_a_body_is_answered_then_closed(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
        assert (await read_answer(reader)).status == 400  # no JSON content type
        assert await reader.read() == b""


async def test_expect_100_continue_is_answered_before_the_body(port: int) -> None:
    body = b'{"a": 2}'
    head = request("POST", "/sum", {"Content-Type": "application/json", "Expect": "100-continue"})
    async with connect(port) as (reader, writer):
        writer.write(head.replace(b"\r\n\r\n", f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()))
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        assert (await read_answer(reader)).body == b"Sum: 2.0"


async def test_chunked_body_is_read_whole(port: int) -> None:
    raw = (
        b"POST /sum HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 4}\r\n0\r\n\r\n'
    )
    assert (await exchange(port, raw)).body == b"Sum: 4.0"


async def test_shutdown_closes_idle_connections_and_finishes_busy_ones() -> None:
    async with serving(settings_for()) as port:
        idle = await asyncio.open_connection("127.0.0.1", port)
        busy = await asyncio.open_connection("127.0.0.1", port)
        busy[1].write(get("/delay?ms=150"))  # sent first, so read first: busy at shutdown
        idle[1].write(get())
        assert (await read_answer(idle[0])).status == 200
    assert await idle[0].read() == b""
    answer = await read_answer(busy[0])
    assert (answer.status, await busy[0].read()) == (200, b"")
    for _, writer in (idle, busy):
        writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_client_that_does_not_read_stops_being_read(port: int) -> None:
    # 8 answers of 4 MiB fill the socket buffers: the server pauses writing, then reading,
    # and resumes both as the client reads. Nothing is lost or reordered.
    size = 4 * 1024 * 1024
    async with connect(port) as (reader, writer):
        writer.write(get(f"/bytes/{size}") * 8 + get())
        answers = [await read_answer(reader) for _ in range(9)]
    assert [len(a.body) for a in answers] == [size] * 8 + [18]


async def test_shutdown_cuts_answers_that_outlast_the_grace() -> None:
    server = TargetsServer(work_s=0, tickets=MemoryTickets(), counts=CountsTable.in_memory(1))
    await server.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(get("/delay?ms=10000"))  # sent first, so read first: busy at shutdown
    assert (await exchange(server.port, get())).status == 200
    started = time.monotonic()
    await server.close(grace_s=0.1)
    assert time.monotonic() - started < 2
    assert await reader.read() == b""
    writer.close()


async def test_start_targets_gives_a_bare_server_with_default_routes() -> None:
    server = await start_targets("127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        assert (await exchange(port, get("/?a=2"))).body == b"Sum: 2.0"
    finally:
        server.close()
        await server.wait_closed()


# -- handler failures, on a server with a router of the test's own ----------------------------


def _boom(_request: Request) -> Response:
    raise RuntimeError("boom")


async def _late_boom(_request: Request) -> Response:
    await asyncio.sleep(0.01)
    raise RuntimeError("late boom")


async def test_failing_handlers_answer_500_and_the_connection_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:

    fallback = route(lambda _r: text_response(200, "ok"))
    router = Router({b"/sync": route(_boom), b"/async": route(_late_boom)}, [], fallback)
    cells = [0] * CELLS
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: TargetProtocol(router, Connections(), cells), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with connect(port) as (reader, writer):
            writer.write(get("/sync") + get("/async") + get("/"))
            statuses = [(await read_answer(reader)).status for _ in range(3)]
    finally:
        server.close()
        await server.wait_closed()
    assert statuses == [500, 500, 200]
    assert "boom" in caplog.text
    assert "late boom" in caplog.text


async def test_a_client_leaving_cancels_its_pending_answer(port: int) -> None:
    started = time.monotonic()
    async with connect(port) as (_reader, writer):
        writer.write(get("/delay?ms=5000"))
        await writer.drain()
    # The server goes on serving others at once; the cancelled delay cost nothing.
    assert (await exchange(port, get())).status == 200
    assert time.monotonic() - started < 4
