"""The targets (and ``latlab serve``) as processes of their own, on uvloop as deployed, with
what the tests read of them from outside: memory, and raw sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services import free_port, wait_for_port


@contextmanager
def server_process(
    args: list[str],
    port: int,
    *,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``[prefix] python -m latlab <args>``, once ``port`` listens; stopped afterwards."""
    environment = {**os.environ, "LATLAB_LOG_LEVEL": "warning", **(env or {})}
    command = [*(prefix or []), sys.executable, "-m", "latlab", *args]
    process = subprocess.Popen(command, env=environment)
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def targets_process() -> Iterator[tuple[int, int]]:
    """``latlab targets`` on a free port: (pid, port)."""
    port = free_port()
    with server_process(["targets", "--port", str(port)], port) as process:
        yield process.pid, port


def resident_mb(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def raw_connection(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def send_until_refused(sock: socket.socket, head: bytes, total_bytes: int) -> int:
    """Send ``head`` then up to ``total_bytes`` of header value; how much went out before the
    server closed the connection."""
    loop, chunk, sent = asyncio.get_running_loop(), b"a" * (1024 * 1024), 0
    try:
        await loop.sock_sendall(sock, head)
        while sent < total_bytes:
            await loop.sock_sendall(sock, chunk)
            sent += len(chunk)
    except OSError:
        pass
    return sent


async def receive_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    loop, received = asyncio.get_running_loop(), b""
    try:
        while data := await loop.sock_recv(sock, 65536):
            received += data
    except OSError:
        pass
    return received
