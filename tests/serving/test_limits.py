"""What a client may hold of a server: head size and count, time, connections, descriptors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from harness import wait_for
from latlab.serving.limits import ServerLimits, connection_cap
from latlab.serving.server import HttpServer
from serving.app import build_router, serving
from serving.http_client import connect, get, read_answer

SHORT = ServerLimits(header_timeout_s=0.2, idle_timeout_s=0.3)


def headers(count: int, size: int = 10) -> str:
    return "".join(f"X-H{n}: {'v' * size}\r\n" for n in range(count))


@pytest.mark.parametrize(
    "extra",
    [headers(1, 70 * 1024), headers(700, 100), headers(101)],
    ids=["one huge header", "many long headers", "more than 100 headers"],
)
async def test_a_head_over_the_limits_is_431_then_closed(port: int, extra: str) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get(extra=extra))
        answer = await read_answer(reader)
        assert (answer.status, answer.headers["connection"]) == (431, "close")
        assert await reader.read() == b""


async def test_a_head_within_the_limits_is_served_even_in_pieces(port: int) -> None:
    raw = get(extra=headers(99, 600))  # ~62 KiB in 99 headers
    async with connect(port) as (reader, writer):
        for start in range(0, len(raw), 7000):
            writer.write(raw[start : start + 7000])
            await writer.drain()
        assert (await read_answer(reader)).status == 200


async def wait_closed_by_server(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (EOF)."""
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    return time.monotonic() - started


async def test_a_head_sent_too_slowly_is_closed_at_the_header_timeout() -> None:
    server = HttpServer(build_router(), limits=SHORT)
    async with serving(server), connect(server.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\n")
        closed = asyncio.create_task(wait_closed_by_server(reader))
        while not closed.done():  # slowloris: a header byte every 20 ms, never the end
            writer.write(b"X")
            await asyncio.wait([closed], timeout=0.02)
        assert 0.15 <= closed.result() < 5


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout() -> None:
    server = HttpServer(build_router(), limits=SHORT)
    async with serving(server), connect(server.port) as (reader, _writer):
        assert 0.15 <= await wait_closed_by_server(reader) < 5


async def test_an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() -> None:
    server = HttpServer(build_router(), limits=SHORT)
    async with serving(server), connect(server.port) as (reader, writer):
        writer.write(get())
        assert (await read_answer(reader)).status == 200
        assert 0.2 <= await wait_closed_by_server(reader) < 5


async def test_a_slow_answer_is_not_cut_by_the_timeouts() -> None:
    server = HttpServer(build_router(), limits=SHORT)
    async with serving(server), connect(server.port) as (reader, writer):
        writer.write(get("/delay?ms=600"))
        assert (await read_answer(reader)).status == 200


async def open_idle(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection the server has accepted (one request answered), then left idle."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(get())
    assert (await read_answer(reader)).status == 200
    return reader, writer


async def test_at_the_connection_cap_the_oldest_idle_connection_makes_room() -> None:
    async with serving(HttpServer(build_router(), limits=ServerLimits(max_connections=3))) as s:
        streams = [await open_idle(s.port) for _ in range(3)]
        newest = await open_idle(s.port)
        assert await asyncio.wait_for(streams[0][0].read(), 5) == b""  # the oldest went
        for _, writer in streams[1:]:  # the others still serve
            writer.write(get())
        for reader, _ in streams[1:]:
            assert (await read_answer(reader)).status == 200
        for _, writer in [*streams, newest]:
            writer.close()


async def test_at_the_connection_cap_with_all_busy_a_new_connection_gets_503() -> None:
    async with serving(HttpServer(build_router(), limits=ServerLimits(max_connections=2))) as s:
        busy = [await asyncio.open_connection("127.0.0.1", s.port) for _ in range(2)]
        for _, writer in busy:
            writer.write(get("/delay?ms=300"))
        async with connect(s.port) as (reader, _writer):
            answer = await read_answer(reader)
            assert (answer.status, answer.headers["connection"]) == (503, "close")
            assert answer.headers["retry-after"] == "1"
        for reader, writer in busy:  # the busy ones were not cut
            assert (await read_answer(reader)).status == 200
            writer.close()


def test_the_connection_cap_keeps_a_reserve_of_descriptors() -> None:
    assert connection_cap(1024) == 768
    assert connection_cap(256) == 128
    assert connection_cap(1_048_576) == 786_432


RAISE = "from latlab.serving.limits import raise_fd_limit; print(raise_fd_limit())"


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one() -> None:
    command = ["prlimit", "--nofile=256:2048", sys.executable, "-c", RAISE]
    run = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    assert run.stdout.strip() == "2048"


async def test_a_client_that_reads_none_of_its_answers_is_cut_at_the_idle_timeout() -> None:
    server = HttpServer(build_router(), limits=SHORT)
    async with serving(server), connect(server.port) as (_reader, writer):
        writer.write(get("/bytes/4194304") * 8)  # far more than the socket buffers hold

        async def cut() -> bool:
            return len(server.connections) == 0

        await wait_for(cut, timeout_s=10, what="the stalled connection to be cut")
