"""A pipeline killed mid-run and started again finishes every acknowledged request, each
written once, in receipt order: ``pipeline up`` on its embedded queue (SQLite), and the
handler alone on Redis Streams (``redis-server --appendonly yes``)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from outages import OwnRedis
from pipeline_files import lines_after_header, read_table, wait_for_results
from pipeline_processes import ROLES, pipeline, pipeline_env
from services import free_port


def assert_written_once_in_receipt_order(out_dir: Path, count: int) -> None:
    receipts = read_table(out_dir / "2.txt")
    results = read_table(out_dir / "1.txt")
    assert len(receipts) == len(results) == count
    assert [row[0] for row in results] == [row[0] for row in receipts]
    assert len({row[0] for row in results}) == count
    assert [row[1] for row in receipts] == sorted(row[1] for row in receipts)


async def test_a_sigkilled_pipeline_finishes_every_acknowledged_request_once_after_restart(
    tmp_path: Path,
) -> None:
    ports = {role: free_port() for role in ROLES}
    query = "connection_count=20&connection_value=300&delay_range=1500&delay_unit=ms"
    with pipeline(tmp_path, ports, "up") as process:
        async with httpx.AsyncClient(timeout=30) as http:
            run = (await http.get(f"http://127.0.0.1:{ports['client']}/?{query}")).json()
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert run["acked"] == 300
    assert lines_after_header(tmp_path / "out" / "1.txt") < 300  # killed mid-run
    with pipeline(tmp_path, ports, "up"):
        await wait_for_results(tmp_path / "out", 300)
    assert_written_once_in_receipt_order(tmp_path / "out", 300)


def send(ports: dict[str, int], root: Path, redis_url: str) -> dict[str, object]:
    """``latlab pipeline send``: 300 requests, delays up to 1.5 s."""
    argv = [sys.executable, "-m", "latlab", "pipeline", "send", "-c", "20", "-n", "300"]
    argv += ["--delay-range", "1500", "--delay-unit", "ms"]
    env = pipeline_env(root, ports, redis_url)
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


async def test_with_redis_a_sigkilled_handler_restarted_finishes_every_request_once(
    tmp_path: Path,
) -> None:
    ports = {role: free_port() for role in ROLES}
    with (
        OwnRedis(appendonly=True) as redis,
        pipeline(tmp_path, ports, "server", redis.url),
        pipeline(tmp_path, ports, "save", redis.url),
    ):
        with pipeline(tmp_path, ports, "process", redis.url) as handler:
            # Processing yields the CPU to the receiver, whose acks clients wait for.
            assert os.getpriority(os.PRIO_PROCESS, handler.pid) == min(os.nice(0) + 10, 19)
            assert os.sched_getscheduler(handler.pid) == os.SCHED_IDLE
            run = send(ports, tmp_path, redis.url)
            handler.send_signal(signal.SIGKILL)
            handler.wait()
        assert run["acked"] == 300
        assert lines_after_header(tmp_path / "out" / "1.txt") < 300  # killed mid-run
        with pipeline(tmp_path, ports, "process", redis.url):
            await wait_for_results(tmp_path / "out", 300)
    assert_written_once_in_receipt_order(tmp_path / "out", 300)


def logged(log: Path) -> str:
    return log.read_text()


async def wait_for_line(log: Path, text: str, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while text not in logged(log):  # noqa: ASYNC110 (another process writes it)
            await asyncio.sleep(0.05)


async def wait_for_failed_calls(port: int, count: int, timeout_s: float = 20.0) -> None:
    """Until the handler's /metrics counts ``count`` calls to the queue that failed."""
    async with httpx.AsyncClient(timeout=5) as http, asyncio.timeout(timeout_s):
        while True:
            page = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            found = re.search(r"^latlab_pipeline_queue_failures_total (\S+)$", page, re.M)
            if found and float(found[1]) >= count:
                return
            await asyncio.sleep(0.05)


async def test_with_redis_down_the_handler_says_so_once_stops_on_sigterm_and_loses_nothing(
    tmp_path: Path,
) -> None:
    ports = {role: free_port() for role in ROLES}
    log = tmp_path / "process.log"
    with (
        OwnRedis(appendonly=True) as redis,
        pipeline(tmp_path, ports, "server", redis.url),
        pipeline(tmp_path, ports, "save", redis.url),
    ):
        with pipeline(tmp_path, ports, "process", redis.url) as handler:
            assert send(ports, tmp_path, redis.url)["acked"] == 300
            redis.stop()  # with most of the 300 still being processed
            await wait_for_line(log, "retrying until the queue answers")
            await wait_for_failed_calls(ports["handler"], 100)  # outcomes, not only claims
            handler.send_signal(signal.SIGTERM)
            assert handler.wait(timeout=15) == 0
        said = logged(log)
        assert said.count("retrying until the queue answers") == 1
        assert "Traceback" not in said
        redis.start()
        with pipeline(tmp_path, ports, "process", redis.url):
            await wait_for_results(tmp_path / "out", 300)
    assert_written_once_in_receipt_order(tmp_path / "out", 300)
