"""Raw HTTP/1.1 over asyncio streams: byte-exact requests, pipelining, disconnects."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from harness import wait_for

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def request(
    method: str = "GET",
    path: str = "/api/latency",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "1.1",
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: t"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def get(path: str = "/api/latency", extra: str = "", version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode("latin-1")


async def read_answer(reader: asyncio.StreamReader, *, head_only: bool = False) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    size = 0 if head_only or "content-length" not in headers else int(headers["content-length"])
    return Answer(int(status_line.split()[1]), headers, await reader.readexactly(size))


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[Streams]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


async def exchange(port: int, raw: bytes, *, head_only: bool = False) -> Answer:
    """One request on a fresh connection."""
    async with connect(port) as (reader, writer):
        writer.write(raw)
        return await read_answer(reader, head_only=head_only)


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
