"""``latlab pipeline <command>`` as a process of its own, on the ports a test picked."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services import wait_for_port

ROLES = ("client", "receiver", "handler", "writer")


def pipeline_env(root: Path, ports: dict[str, int], redis_url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{root / 'latlab.db'}",
        "LATLAB_PIPELINE_OUT_DIR": str(root / "out"),
        "LATLAB_PIPELINE_RECEIVER_URL": f"http://127.0.0.1:{ports['receiver']}",
        **{f"LATLAB_PIPELINE_{role.upper()}_PORT": str(port) for role, port in ports.items()},
    }
    env.pop("LATLAB_REDIS_URL", None)
    if redis_url is not None:
        env["LATLAB_REDIS_URL"] = redis_url
    return env


@contextmanager
def pipeline(
    root: Path, ports: dict[str, int], command: str, redis_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``latlab pipeline <command>``, up once the port of its role (up: the client) listens."""
    env = pipeline_env(root, ports, redis_url)
    role = {"up": "client", "server": "receiver", "process": "handler", "save": "writer"}[command]
    argv = [sys.executable, "-m", "latlab", "pipeline", command]
    with (root / f"{command}.log").open("ab") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", ports[role], 30, process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
