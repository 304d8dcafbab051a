"""The control API's connections under attack: ``latlab serve`` under a hard limit of 1,024
file descriptors, 1,100 connections to the API port that never send a byte. The API holds
its share of the descriptors and closes the rest at once, so the targets and the probes keep
theirs; the idle ones are closed after the header timeout and the API answers again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from harness import hold_connections, wait_for
from latlab.cli.api_connections import ConnectionBudget, capped_protocol, share_connections
from latlab.settings import Settings
from services import free_port, wait_for_port

ATTACKERS = 1100
HEADER_TIMEOUT_S = 1.0


@contextmanager
def serve_under_fd_limit(db: Path, api_port: int, targets_port: int) -> Iterator[int]:
    """``latlab serve`` under ``prlimit --nofile=1024:1024``, once the API listens: its pid."""
    args = ["serve", "--port", str(api_port), "--targets-port", str(targets_port)]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LATLAB_")},
        "LATLAB_LOG_LEVEL": "warning",
        "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{db}",
        "LATLAB_TARGETS_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    command = ["prlimit", "--nofile=1024:1024", sys.executable, "-m", "latlab", *args]
    process = subprocess.Popen(command, env=env)
    try:
        wait_for_port("127.0.0.1", api_port, 30, process)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


async def fresh_get(url: str) -> int | str:
    """A GET over a connection of its own: the status, or why there was none."""
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(url)).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_idle_api_connections_past_the_cap_leave_the_targets_and_probes_their_fds(
    tmp_path: Path,
) -> None:
    api_port, targets_port = free_port(), free_port()
    api, targets = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{targets_port}"
    probe = f"/test-latency?host=127.0.0.1&port={targets_port}&path=/status/200"
    with serve_under_fd_limit(tmp_path / "latlab.db", api_port, targets_port) as pid:
        # Opened before the attack: the API keeps serving the connections it holds.
        async with httpx.AsyncClient(base_url=api, timeout=5) as kept:
            assert (await kept.get("/healthz")).status_code == 200
            attackers = await hold_connections(api_port, ATTACKERS)
            try:
                assert await fresh_get(f"{targets}/status/200") == 200
                assert await fresh_get(f"{api}/healthz") != 200  # past the cap: closed
                assert open_descriptors(pid) < 1000
                answer = await kept.get(probe)
                assert answer.status_code == 200, answer.text
                assert answer.json()["status_code"] == 200, answer.text

                async def api_answers() -> bool:
                    return await fresh_get(f"{api}/healthz") == 200

                # The attackers' connections end after the header timeout, making room.
                await wait_for(api_answers, 10 * HEADER_TIMEOUT_S, "the API to answer")
            finally:
                for writer in attackers:
                    writer.close()


def test_the_api_and_the_targets_share_the_connections_the_fd_limit_allows() -> None:
    assert share_connections(Settings(), 768) == ConnectionBudget(api=384, targets=384)
    assert share_connections(Settings(targets_max_connections=700), 768).api == 68
    assert share_connections(Settings(api_max_connections=100), 768).targets == 668
    both = Settings(api_max_connections=5, targets_max_connections=6)
    assert share_connections(both, 768) == ConnectionBudget(api=5, targets=6)
    assert share_connections(Settings(targets_enabled=False), 768) == ConnectionBudget(768, None)


async def hello(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_past_the_cap_a_connection_gets_503_and_a_slow_head_is_closed() -> None:
    protocol = capped_protocol(max_connections=2, header_timeout_s=1.0)
    config = uvicorn.Config(hello, port=0, http=protocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: asyncio.sleep(0, server.started), what="uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"0\r\n\r\n")).startswith(b"HTTP/1.1 200")
    _, idle = await asyncio.open_connection("127.0.0.1", port)  # the second of two
    refused, extra = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert (await refused.read()).startswith(b"HTTP/1.1 503")
        # A second request that never finishes its head: closed after the header timeout.
        writer.write(b"GET / HTTP/1.1\r\nHo")
        assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        for each in (writer, idle, extra):
            each.close()
        server.should_exit = True
        await task
