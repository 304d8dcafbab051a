"""Run LatLab's targets in a child process so that they do not share the measured loop."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_CHILD = (
    "import sys, uvloop; from latlab.targets.server import serve_targets; "
    "uvloop.run(serve_targets('127.0.0.1', int(sys.argv[1])))"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def targets_process() -> Iterator[int]:
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("targets did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        child.terminate()
        child.wait(timeout=10)
