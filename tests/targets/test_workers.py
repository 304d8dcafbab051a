"""The targets as processes: ``latlab targets`` (one or several workers), /test across them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from clients import Work, assert_fifo, assert_serialized, simultaneous, wait_metric
from running import forget, new_prefix

from harness import wait_for
from influx import InfluxServer, influx_server
from services import free_port, require_redis, wait_for_port
from serving.http_client import exchange, get, read_answer

WORK_S = 0.05
Env = dict[str, str]
# As a background job of a non-interactive shell starts: with SIGINT ignored, which exec keeps.
SIGINT_IGNORED = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]


@contextmanager
def latlab_targets(
    log_dir: Path, env: Env, *args: str, sigint_ignored: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``latlab targets`` on a free port; SIGTERM at the end (a test may stop it first)."""
    port = free_port()
    command = [*(SIGINT_IGNORED if sigint_ignored else []), sys.executable, "-m", "latlab"]
    command += ["targets", "--port", str(port), *args]
    log = (log_dir / f"targets-{port}.log").open("wb")
    env = {**os.environ, "LATLAB_LOG_LEVEL": "info", **env}  # the start is read from the log
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_announced(log_dir / f"targets-{port}.log", process)
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        log.close()


def wait_announced(log: Path, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Until the log says the targets serve (with --workers: every worker listens)."""
    deadline = time.monotonic() + timeout_s
    while "targets on http://" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"targets did not start:\n{log.read_text()}")
        time.sleep(0.02)


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxServer]:
    with influx_server(tmp_path / "influx") as server:
        yield server


@pytest.fixture(params=["file", "redis"])
def queue_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """Environment that makes every process started with it share one /test queue."""
    env = {"LATLAB_TARGETS_WORK_S": str(WORK_S)}
    if request.param == "file":
        yield {**env, "LATLAB_TARGETS_LOCK_PATH": str(tmp_path / "test.tickets")}
        return
    prefix = new_prefix()
    yield {**env, "LATLAB_REDIS_URL": require_redis(), "LATLAB_REDIS_PREFIX": prefix}
    forget(prefix)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited; maybe not yet reaped by whoever adopted it


async def wait_gone(pids: set[int]) -> None:
    async def all_gone() -> bool:
        return all(gone(pid) for pid in pids)

    await wait_for(all_gone, what=f"processes {pids} to exit")


async def test_two_servers_sharing_a_queue_serve_in_the_order_sent(
    tmp_path: Path, queue_env: Env
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(latlab_targets(tmp_path, queue_env))
        b = stack.enter_context(latlab_targets(tmp_path, queue_env))
        ports = [a[1], b[1]] * 3
        streams = []
        for index, port in enumerate(ports):
            # Each request goes out once the one before holds its ticket: a known order.
            streams.append(await asyncio.open_connection("127.0.0.1", port))
            streams[-1][1].write(get("/test"))
            await wait_metric(port, "latlab_target_test_tickets_total", index // 2 + 1)
        works = [Work.of(await read_answer(reader)) for reader, _ in streams]
        for _, writer in streams:
            writer.close()
        for process, _ in (a, b):
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
    assert sorted(works, key=lambda w: w.started) == works
    assert_serialized(works, WORK_S)
    assert len({w.pid for w in works}) == 2


async def test_workers_share_one_port_and_one_queue(tmp_path: Path, queue_env: Env) -> None:
    with latlab_targets(tmp_path, queue_env, "--workers", "2") as (process, port):
        works = await simultaneous(port, 24)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert_serialized(works, WORK_S)
    assert_fifo(works)
    # 24 connections all hashed to one worker would be a 1-in-8-million event.
    assert len({w.pid for w in works}) == 2


async def test_workers_report_one_total_to_influx(tmp_path: Path, influx: InfluxServer) -> None:
    env = {
        "LATLAB_INFLUX_URL": influx.url,
        "LATLAB_TARGETS_MINUTE_S": "0.2",
        "LATLAB_TARGETS_WORK_S": "0.001",
    }
    with latlab_targets(tmp_path, env, "--workers", "2") as (process, port):
        works = await simultaneous(port, 24)
        sums = await asyncio.gather(*(exchange(port, get(f"/?a={i}")) for i in range(30)))
        assert len({w.pid for w in works}) == 2  # so both workers' rows hold counts
        assert {a.status for a in sums} == {200}
        process.terminate()  # the last partial period is written after the workers stop
        assert process.wait(timeout=30) == 0
    assert sum(point["requests_number"] for point in influx.points()) == 24 + 30


async def test_a_worker_that_dies_stops_the_rest(tmp_path: Path) -> None:
    env = {"LATLAB_TARGETS_WORK_S": "0.001"}
    with latlab_targets(tmp_path, env, "--workers", "2") as (process, port):
        pids = {w.pid for w in await simultaneous(port, 24)}
        os.kill(pids.pop(), signal.SIGKILL)
        assert process.wait(timeout=30) == 1
        await wait_gone(pids)
    assert "exited with -9" in (tmp_path / f"targets-{port}.log").read_text()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_started_with_sigint_ignored_the_targets_still_stop_on_it(
    tmp_path: Path, workers: str
) -> None:
    env = {"LATLAB_TARGETS_WORK_S": "0.001"}
    with latlab_targets(tmp_path, env, "--workers", workers, sigint_ignored=True) as (process, _):
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


async def test_a_worker_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    env = {"LATLAB_TARGETS_WORK_S": "0.001"}
    with latlab_targets(tmp_path, env, "--workers", "2", sigint_ignored=True) as (process, port):
        pid = (await simultaneous(port, 24))[0].pid
        os.kill(pid, signal.SIGINT)
        assert process.wait(timeout=30) == 1  # one worker fewer: the parent stops the rest
    assert f"worker {pid} exited with 0" in (tmp_path / f"targets-{port}.log").read_text()


async def test_workers_leave_when_the_parent_is_killed(tmp_path: Path) -> None:
    env = {"LATLAB_TARGETS_WORK_S": "0.001"}
    with latlab_targets(tmp_path, env, "--workers", "2") as (process, port):
        pids = {w.pid for w in await simultaneous(port, 24)}
        process.kill()
        process.wait(timeout=10)
        await wait_gone(pids)  # each saw its stdin close and shut down


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_fails_at_start(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "latlab", "targets", "--port", str(port)]
        run = subprocess.run(
            [*command, "--workers", workers], capture_output=True, timeout=30, check=False
        )
    assert run.returncode != 0
    assert b"in use" in run.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unusable_ticket_file_fails_at_start(tmp_path: Path, workers: str) -> None:
    env = {**os.environ, "LATLAB_TARGETS_LOCK_PATH": str(tmp_path / "missing" / "test.tickets")}
    command = [sys.executable, "-m", "latlab", "targets", "--port", str(free_port())]
    command += ["--workers", workers]
    run = subprocess.run(command, env=env, capture_output=True, timeout=30, check=False)
    assert run.returncode == 1
    assert b"No such file or directory" in run.stderr


@contextmanager
def latlab_serve(tmp_path: Path, env: Env, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``latlab serve`` on a free port with a SQLite file; killed if the test left it up."""
    port = free_port()
    env = {**os.environ, "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", **env}
    command = [sys.executable, "-m", "latlab", "serve", "--port", str(port), *args]
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port("127.0.0.1", port, 30, process)
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


async def test_latlab_serve_serves_the_targets_and_writes_the_last_period(
    tmp_path: Path, influx: InfluxServer
) -> None:
    targets_port = free_port()
    # A long period: the only point is the partial one written at shutdown.
    env = {"LATLAB_INFLUX_URL": influx.url, "LATLAB_TARGETS_MINUTE_S": "3600"}
    with latlab_serve(tmp_path, env, "--targets-port", str(targets_port)) as process:
        answers = [await exchange(targets_port, get(f"/?a={i}")) for i in range(5)]
        process.terminate()
        assert process.wait(timeout=30) == 0
    assert [a.body for a in answers] == [f"Sum: {i}.0".encode() for i in range(5)]
    assert sum(point["requests_number"] for point in influx.points()) == 5
