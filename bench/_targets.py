"""Run LatLab's targets in a child process so that they do not share the measured loop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"nothing listens on port {port}") from None
            time.sleep(0.05)


@contextmanager
def targets_process() -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "LATLAB_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "latlab", "targets", "--port", str(port)]
    child = subprocess.Popen(command, env=env)
    try:
        wait_listening(port, child)
        yield port
    finally:
        child.terminate()
        child.wait(timeout=10)
