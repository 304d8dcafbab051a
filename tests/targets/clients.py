"""Clients of the targets: /test turns, /metrics samples, and what they must show.

Raw HTTP/1.1 (``get``, ``read_answer``, ...) is ``serving.http_client``'s."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass

import pytest

from harness import wait_for
from serving.http_client import Answer, connect, get, read_answer


@dataclass(frozen=True)
class Work:
    """What a ``GET /test`` answer tells about its turn (wall-clock times, Unix seconds)."""

    ticket: int
    arrived: float
    queued: float
    started: float
    ended: float
    elapsed: float
    pid: int

    @classmethod
    def of(cls, answer: Answer) -> Work:
        assert answer.status == 200, answer
        h = answer.headers
        elapsed = json.loads(answer.body)["elapsed"]
        return cls(
            int(h["x-ticket"]),
            float(h["x-arrived-at"]),
            float(h["x-queued-at"]),
            float(h["x-work-started-at"]),
            float(h["x-work-ended-at"]),
            float(elapsed),
            int(h["x-worker-pid"]),
        )


async def metric(port: int, name: str) -> float:
    """The value of one sample of the targets' /metrics (0 when absent)."""
    async with connect(port) as (reader, writer):
        writer.write(get("/metrics"))
        page = (await read_answer(reader)).body.decode()
    for line in page.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return 0.0


async def simultaneous(port: int, count: int) -> list[Work]:
    """``count`` requests on as many connections, all written before any answer is read."""
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    try:
        for _, writer in streams:
            writer.write(get("/test"))
        answers = await asyncio.gather(*(read_answer(reader) for reader, _ in streams))
    finally:
        for _, writer in streams:
            writer.close()
    return [Work.of(answer) for answer in answers]


def assert_serialized(works: list[Work], work_s: float) -> None:
    """Never two at once, in ticket order, each as long as the work, elapsed as measured."""
    by_start = sorted(works, key=lambda w: w.started)
    for before, after in itertools.pairwise(by_start):
        assert before.ended <= after.started, (before, after)
        assert before.ticket < after.ticket
    for work in works:
        assert work.ended - work.started >= work_s - 0.001
        assert work.elapsed == pytest.approx(work.ended - work.arrived, abs=0.02)


def assert_fifo(works: list[Work]) -> None:
    """A request that held its ticket before another arrived works before it."""
    for first, second in itertools.permutations(works, 2):
        if first.queued < second.arrived:
            assert first.started < second.started, (first, second)


async def wait_metric(port: int, name: str, value: float) -> None:
    """Until the metric reaches ``value``."""

    async def reached() -> bool:
        return await metric(port, name) >= value

    await wait_for(reached, what=f"{name} >= {value}")
