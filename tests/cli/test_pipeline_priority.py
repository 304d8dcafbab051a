"""The handler and the writer run under SCHED_IDLE, on the CPU the receiver leaves; they must
still start and stop when other processes hold every core (a busy CI machine: a writer
starved before its first line, or after SIGTERM, stayed up for ever)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from outages import OwnRedis
from pipeline_processes import ROLES, pipeline
from services import free_port


@contextmanager
def every_core_busy() -> Iterator[None]:
    """A busy loop per core, at the test's own priority, until the block ends."""
    spin = [sys.executable, "-c", "while True: pass"]
    hogs = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.mark.parametrize("command", ["process", "save"])
def test_a_background_service_starts_and_stops_while_every_core_is_busy(
    tmp_path: Path, command: str
) -> None:
    ports = {role: free_port() for role in ROLES}
    with (
        OwnRedis() as redis,
        every_core_busy(),
        pipeline(tmp_path, ports, command, redis.url) as service,  # listening within 30 s
    ):
        assert os.sched_getscheduler(service.pid) == os.SCHED_IDLE
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=15) == 0
    assert "shutting down" in (tmp_path / f"{command}.log").read_text()
