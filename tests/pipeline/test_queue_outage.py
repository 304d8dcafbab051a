"""Redis down for a while under the handler and the writer: each says so once when it starts
and once when it ends (not a traceback per request or per second), and every request in
flight meanwhile is finished and written once Redis is back."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from latlab.pipeline.files import Fsync
from latlab.pipeline.handler import Handler
from latlab.pipeline.queue.redis import RedisQueue
from latlab.pipeline.receipts import Incoming
from latlab.pipeline.writer import OrderedWriter
from outages import OwnRedis
from pipeline_files import read_table, stop_tasks, wait_for_results

IN_FLIGHT = 200
OUTAGE_S = 2.0  # longer than the handler's old retries of one outcome (1.25 s in all)


def incoming(delay_s: float) -> Incoming:
    return Incoming(str(uuid.uuid4()), delay_s, datetime.now(UTC))


@pytest.fixture
async def redis_queue() -> AsyncIterator[tuple[OwnRedis, RedisQueue]]:
    with OwnRedis(appendonly=True) as server:
        queue = await RedisQueue.open(server.url, "outage", timeout_s=1.0)
        try:
            yield server, queue
        finally:
            await queue.close()


async def until(condition: Any, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (counters of tasks on this loop)
            await asyncio.sleep(0.01)


async def running(*coroutines: Coroutine[Any, Any, None]) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(coroutine) for coroutine in coroutines]


def said(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


async def test_the_handler_logs_an_outage_twice_and_finishes_the_work_in_flight_after(
    redis_queue: tuple[OwnRedis, RedisQueue], caplog: pytest.LogCaptureFixture
) -> None:
    server, queue = redis_queue
    await queue.append([incoming(0.3) for _ in range(IN_FLIGHT)])
    handler = Handler(queue, concurrency=1000, max_tries=5)
    tasks = await running(handler.run())
    try:
        await until(lambda: handler.in_flight == IN_FLIGHT)
        async with server.outage():  # each delay ends while Redis is down
            await asyncio.sleep(OUTAGE_S)
        await until(lambda: handler.processed == IN_FLIGHT)
    finally:
        await stop_tasks(tasks)
    records = said(caplog, "latlab.pipeline.handler")
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    assert "retrying until the queue answers" in records[0].getMessage()
    assert records[0].exc_info is None  # one line: why, not a traceback
    assert "answers again" in records[1].getMessage()
    assert handler.failed == 0


async def test_the_writer_logs_an_outage_twice_and_writes_what_came_meanwhile(
    redis_queue: tuple[OwnRedis, RedisQueue], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    server, queue = redis_queue
    writer = OrderedWriter(queue, tmp_path / "out", Fsync.NEVER)
    handler = Handler(queue, concurrency=100, max_tries=5)
    tasks = await running(writer.run(), handler.run())
    try:
        await queue.append([incoming(0.0)])
        await wait_for_results(tmp_path / "out", 1)
        async with server.outage():
            await asyncio.sleep(OUTAGE_S)
        await queue.append([incoming(0.0) for _ in range(10)])
        await wait_for_results(tmp_path / "out", 11)
    finally:
        await stop_tasks(tasks)
    records = said(caplog, "latlab.pipeline.writer")
    assert len(records) == 2, [r.getMessage() for r in records]
    assert records[0].exc_info is None
    assert len(read_table(tmp_path / "out" / "1.txt")) == 11
