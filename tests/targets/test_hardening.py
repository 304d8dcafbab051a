"""The targets as deployed (their own process, uvloop) against what a hostile or careless
client does: answers never read, a huge header, /delay as a calibration target, and more
connections than the file-descriptor limit allows, beside the control API."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path

import httpx
import pytest
import uvloop
from running import serving, settings_for
from subprocesses import (
    raw_connection,
    receive_all,
    resident_mb,
    send_until_refused,
    server_process,
    targets_process,
)

from harness import hold_connections, wait_for
from latlab.serving.routes import Answer, Router, route
from latlab.serving.server import HttpServer
from latlab.serving.wire import Request, Response
from latlab.targets.calibration import delay
from services import free_port
from serving.http_client import connect, exchange, get, read_answer


@pytest.fixture
def targets() -> Iterator[tuple[int, int]]:
    with targets_process() as pid_and_port:
        yield pid_and_port


async def test_big_pipelined_answers_never_read_hold_a_few_mb(targets: tuple[int, int]) -> None:
    pid, port = targets
    before_mb = resident_mb(pid)
    async with connect(port) as (reader, writer):
        writer.write(get("/bytes/10485760") * 100)
        await reader.readexactly(1)  # the server is answering: it has read the requests
        assert (await exchange(port, get("/api/latency"))).status == 200  # and moved on
        growth_mb = resident_mb(pid) - before_mb
    assert growth_mb < 40, f"{growth_mb:.0f} MB"  # 10 MiB of it is the answers' shared body


async def test_a_huge_header_is_refused_early_while_others_are_served(
    targets: tuple[int, int],
) -> None:
    _, port = targets
    sock = await raw_connection(port)
    head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: "
    streaming = asyncio.create_task(send_until_refused(sock, head, 200 * 1024 * 1024))
    answer = asyncio.create_task(receive_all(sock))
    latencies_s: list[float] = []
    async with connect(port) as (reader, writer):
        while len(latencies_s) < 20 or not streaming.done():
            started = time.perf_counter()
            writer.write(get("/api/latency"))
            assert (await read_answer(reader)).status == 200
            latencies_s.append(time.perf_counter() - started)
    sent, received = await streaming, await answer
    sock.close()
    assert received.startswith(b"HTTP/1.1 431 ")
    assert sent < 64 * 1024 * 1024  # refused after 64 KiB; the rest filled socket buffers
    assert max(latencies_s) < 0.5  # nobody waited on the huge header (it used to be 11 s)


def test_delay_never_answers_early_on_uvloop() -> None:
    # uvloop's timers count whole milliseconds from the loop's last look at the clock: a
    # request arriving mid-millisecond had its delay end up to 1 ms early.
    assert min(uvloop.run(delays_served_s(probes=80))) >= 0.020


async def delays_served_s(probes: int) -> list[float]:
    """Serve /delay?ms=20 to ``probes`` fresh connections from client threads; the handler's
    elapsed time of each, recorded by the server (from the call to the answer)."""
    elapsed_s: list[float] = []

    async def timed(answer: Awaitable[Response], started: float) -> Response:
        response = await answer
        elapsed_s.append(time.perf_counter() - started)
        return response

    def timed_delay(request: Request) -> Answer:
        started, answer = time.perf_counter(), delay(request)
        return answer if isinstance(answer, Response) else timed(answer, started)

    server = HttpServer(Router({b"/delay": route(timed_delay)}))
    await server.listen("127.0.0.1", 0)

    def client(count: int) -> None:
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(get("/delay?ms=20"))
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")

    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(None, client, probes // 4) for _ in range(4)))
    await server.close()
    assert len(elapsed_s) == probes
    return elapsed_s


async def test_settings_limit_the_headers_of_the_targets() -> None:
    async with serving(settings_for(targets_max_headers=2)) as port:
        assert (await exchange(port, get(extra="A: 1\r\n"))).status == 200
        assert (await exchange(port, get(extra="A: 1\r\nB: 2\r\n"))).status == 431


@pytest.mark.slow
async def test_the_api_answers_while_the_targets_hold_more_than_the_fd_limit(
    tmp_path: Path,
) -> None:
    api_port, targets_port = free_port(), free_port()
    args = ["serve", "--port", str(api_port), "--targets-port", str(targets_port)]
    env = {"LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}"}
    prefix = ["prlimit", "--nofile=1024:1024"]
    with server_process(args, api_port, prefix=prefix, env=env):
        writers = await hold_connections(targets_port, 1100)
        try:
            # The newest connection is answered (the oldest idle ones made room)...
            async with connect(targets_port) as (reader, writer):
                writer.write(get("/api/latency"))
                assert (await asyncio.wait_for(read_answer(reader), 10)).status == 200
            # ...and the API, its store and its probes still have descriptors.
            await probe_through_the_api(f"http://127.0.0.1:{api_port}", targets_port)
        finally:
            for writer in writers:
                writer.close()


async def probe_through_the_api(api: str, targets_port: int) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        spec = {"host": "127.0.0.1", "port": targets_port, "interval_s": 0.02, "count": 3}
        created = await client.post("/api/v1/experiments?start=true", json=spec)
        assert created.status_code == 201, created.text
        url = f"/api/v1/experiments/{created.json()['id']}"

        async def completed() -> bool:
            return bool((await client.get(url)).json()["state"] == "completed")

        await wait_for(completed, what="the experiment's 3 probes")
        results = (await client.get(f"{url}/results")).json()["data"]
    assert [(r["status_code"], r["error"]) for r in results] == [(200, None)] * 3
