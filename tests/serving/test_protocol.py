"""HTTP/1.1 as the serving kit speaks it: keep-alive, pipelining, limits, errors, shutdown."""

from __future__ import annotations

import asyncio
import time

import pytest

from latlab.serving.counting import METHOD_INDEX, OTHER_METHOD, request_cell
from latlab.serving.protocol import MAX_BODY_BYTES, MAX_PENDING, MAX_URL_BYTES
from latlab.serving.server import HttpServer
from serving.app import build_router, serving
from serving.http_client import connect, exchange, get, read_answer, request


async def test_keep_alive_serves_several_requests_on_one_connection(port: int) -> None:
    async with connect(port) as (reader, writer):
        for _ in range(3):
            writer.write(get())
            answer = await read_answer(reader)
            assert (answer.status, answer.json()) == (200, {"message": "pong"})
            assert answer.headers["connection"] == "keep-alive"
            assert int(answer.headers["content-length"]) == len(answer.body)


async def test_pipelined_answers_keep_request_order_around_slow_handlers(port: int) -> None:
    requests = [
        get("/delay?ms=60"),
        request("POST", "/echo", body=b"one"),
        get("/delay?ms=1"),
        get("/status/404"),
        request("DELETE", "/"),
        get(),
    ]
    async with connect(port) as (reader, writer):
        writer.write(b"".join(requests))
        answers = [await read_answer(reader) for _ in requests]
    assert [a.status for a in answers] == [200, 200, 200, 404, 405, 200]
    assert answers[0].json() == {"delayed_ms": 60.0}
    assert answers[1].body == b"one"


async def test_an_answer_given_as_a_future_is_written_in_its_turn_once_set(port: int) -> None:
    requests = [get("/later?ms=50"), get(), get("/failed-later"), get("/later?ms=0")]
    async with connect(port) as (reader, writer):
        writer.write(b"".join(requests))
        answers = [await read_answer(reader) for _ in requests]
    assert [a.status for a in answers] == [200, 200, 500, 200]
    assert answers[0].json() == {"later_ms": 50.0}


async def test_a_path_no_route_matches_is_404(port: int) -> None:
    answer = await exchange(port, request("PUT", "/nowhere"))
    assert (answer.status, answer.json()) == (404, {"detail": "Not Found"})


async def test_a_client_pipelining_past_the_limit_is_paused_then_served(port: int) -> None:
    count = MAX_PENDING * 3
    async with connect(port) as (reader, writer):
        writer.write(get("/delay?ms=0") * count)
        answers = [await read_answer(reader) for _ in range(count)]
    assert {a.status for a in answers} == {200}


async def test_request_split_into_single_bytes_is_parsed(port: int) -> None:
    async with connect(port) as (reader, writer):
        for byte in get("/?x=1"):
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
        writer.write(request("POST", "/", body=b"abc") + get())
        answer = await read_answer(reader)
        assert (answer.status, answer.headers["allow"]) == (405, "GET, HEAD")
        assert (await read_answer(reader)).status == 200


async def test_head_response_carries_no_body(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(request("HEAD", "/status/404") + get())
        answer = await read_answer(reader, head_only=True)
        assert (answer.status, answer.headers["content-length"]) == (
            404,
            str(len(b'{"detail":"as asked"}')),
        )
        # Had a body been sent, it would be read here as the next status line.
        assert (await read_answer(reader)).status == 200


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (get("/" + "a" * MAX_URL_BYTES), 414),
        (request("POST", "/echo", body=b" " * (MAX_BODY_BYTES + 1)), 413),
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


async def test_upgrade_on_a_post_is_answered_then_closed(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(request("POST", "/echo", {"Connection": "Upgrade", "Upgrade": "x"}))
        assert (await read_answer(reader)).status == 200
        assert await reader.read() == b""


async def test_expect_100_continue_is_answered_before_the_body(port: int) -> None:
    body = b'{"a": 2}'
    head = request("POST", "/echo", {"Content-Type": "application/json", "Expect": "100-continue"})
    async with connect(port) as (reader, writer):
        writer.write(head.replace(b"\r\n\r\n", f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()))
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        answer = await read_answer(reader)
    assert (answer.body, answer.headers["content-type"]) == (body, "application/json")


async def test_chunked_body_is_read_whole(port: int) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: t\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 4}\r\n0\r\n\r\n'
    )
    assert (await exchange(port, raw)).body == b'{"a": 4}'


async def test_a_client_that_does_not_read_stops_being_read(port: int) -> None:
    # 8 answers of 4 MiB fill the socket buffers: the server pauses writing, then reading,
    # and resumes both as the client reads. Nothing is lost or reordered.
    size = 4 * 1024 * 1024
    async with connect(port) as (reader, writer):
        writer.write(get(f"/bytes/{size}") * 8 + get())
        answers = [await read_answer(reader) for _ in range(9)]
    assert [len(a.body) for a in answers] == [size] * 8 + [18]


async def test_failing_handlers_answer_500_and_the_connection_goes_on(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get("/sync-boom") + get("/async-boom") + get("/"))
        statuses = [(await read_answer(reader)).status for _ in range(3)]
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


# -- counting and shutdown, on a server of the test's own ----------------------------------


async def test_answers_are_counted_by_method_and_status_class() -> None:
    async with serving() as server:
        raw = get() + get("/status/503") + request("HEAD", "/") + request("PUT", "/")
        async with connect(server.port) as (reader, writer):
            writer.write(raw + get("/uncounted"))
            for head_only in (False, False, True, False, False):
                await read_answer(reader, head_only=head_only)
    expected = {
        request_cell(METHOD_INDEX[b"GET"], 200): 1,
        request_cell(METHOD_INDEX[b"GET"], 503): 1,
        request_cell(METHOD_INDEX[b"HEAD"], 200): 1,
        request_cell(OTHER_METHOD, 404): 1,
    }
    assert {cell: n for cell, n in enumerate(server.counts) if n} == expected


def test_counts_too_short_for_the_layout_are_refused() -> None:
    with pytest.raises(ValueError, match="counts"):
        HttpServer(build_router(), [0, 0])


async def test_shutdown_closes_idle_connections_and_finishes_busy_ones() -> None:
    async with serving() as server:
        port = server.port
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


async def test_shutdown_cuts_answers_that_outlast_the_grace() -> None:
    server = HttpServer(build_router())
    await server.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(get("/delay?ms=10000"))  # sent first, so read first: busy at shutdown
    assert (await exchange(server.port, get())).status == 200
    started = time.monotonic()
    await server.close(grace_s=0.1)
    assert time.monotonic() - started < 2
    assert await reader.read() == b""
    writer.close()
