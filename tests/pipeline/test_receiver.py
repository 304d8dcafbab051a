"""The receiver takes only what a pipeline client sends: JSON, from this machine or a listed
host, not from a web page; a refused request enqueues nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from latlab.pipeline.queue.sql import SqlQueue
from latlab.pipeline.receiver import Receiver
from latlab.pipeline.services import Pipeline, Role, open_pipeline
from latlab.serving.wire import Request, Response
from outages import OwnRedis
from pipeline_files import pipeline_settings

BODY = '{"request": {"id": "8b9cad0e-1d0b-4c8e-9b5a-0a6f7d3f0c11", "delay": 0}}'
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    roles = (Role.RECEIVER, Role.HANDLER, Role.WRITER)
    async with open_pipeline(pipeline_settings(tmp_path), roles) as opened:
        yield opened


async def post(pipeline: Pipeline, body: str, headers: dict[str, str]) -> httpx.Response:
    base = f"http://127.0.0.1:{pipeline.port(Role.RECEIVER)}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return await http.post("/handler", content=body, headers=headers)


def received(pipeline: Pipeline) -> int:
    assert pipeline.receiver is not None
    return pipeline.receiver.received


async def test_a_json_request_is_acknowledged(pipeline: Pipeline) -> None:
    answer = await post(pipeline, BODY, JSON)
    assert (answer.status_code, answer.json()) == (200, {"asyncAnswer": "Ok"})
    assert received(pipeline) == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),  # what a web page may POST without asking
        ({}, 415),
        ({**JSON, "Origin": "http://evil.example"}, 403),
        ({**JSON, "Sec-Fetch-Site": "cross-site"}, 403),
        ({**JSON, "Host": "rebound.example:5001"}, 400),
    ],
)
async def test_a_request_from_a_web_page_is_refused_and_enqueues_nothing(
    pipeline: Pipeline, headers: dict[str, str], status: int
) -> None:
    answer = await post(pipeline, BODY, headers)
    assert answer.status_code == status
    assert received(pipeline) == 0


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"request": {"id": "x", "delay": 0}}',
        '{"request": {"id": "8b9cad0e-1d0b-4c8e-9b5a-0a6f7d3f0c11", "delay": -1}}',
        '{"request": {"id": "8b9cad0e-1d0b-4c8e-9b5a-0a6f7d3f0c11", "delay": "1"}}',
        '{"request": {"id": "8b9cad0e-1d0b-4c8e-9b5a-0a6f7d3f0c11", "delay": 1e9}}',
        '{"request": {"id": "8b9cad0e-1d0b-4c8e-9b5a-0a6f7d3f0c11"}}',
    ],
)
async def test_a_bad_body_gets_422_saying_why_and_enqueues_nothing(
    pipeline: Pipeline, body: str
) -> None:
    answer = await post(pipeline, body, JSON)
    assert answer.status_code == 422
    assert answer.json()["detail"]
    assert received(pipeline) == 0


async def test_a_request_whose_client_left_during_its_commit_is_counted_once_durable(
    tmp_path: Path,
) -> None:
    queue = await SqlQueue.open(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    receiver = Receiver(queue, max_delay_s=10)
    request = Request(b"POST", b"/handler", b"", b"application/json", BODY.encode())
    answer = receiver.handle(request)
    assert not isinstance(answer, Response)
    task = asyncio.ensure_future(answer)
    await asyncio.sleep(0)  # submitted: its commit is under way
    task.cancel()  # the client hung up, as the serving kit cancels its answer
    await receiver.close()  # the commit under way ends
    await queue.close()
    assert receiver.received == 1
    assert len(stored_receipts(tmp_path)) == 1


def stored_receipts(root: Path) -> list[tuple[int]]:
    with contextlib.closing(sqlite3.connect(root / "q.db")) as db:
        rows: list[tuple[int]] = db.execute("SELECT seq FROM pipeline_receipts").fetchall()
    return rows


async def test_redis_down_is_503_for_each_request_and_one_warning_not_a_traceback_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with OwnRedis() as redis:
        settings = pipeline_settings(tmp_path).model_copy(update={"redis_url": redis.url})
        async with open_pipeline(settings, (Role.RECEIVER,)) as alone:
            assert (await post(alone, BODY, JSON)).status_code == 200
            async with redis.outage():
                answers = await asyncio.gather(*(post(alone, BODY, JSON) for _ in range(20)))
                assert {answer.status_code for answer in answers} == {503}
            assert (await post(alone, BODY, JSON)).status_code == 200
    said = [r for r in caplog.records if r.name == "latlab.pipeline.receiver"]
    assert [r.levelno for r in said] == [logging.WARNING, logging.WARNING]
    assert "retrying until" not in said[0].getMessage()  # the receiver answers 503 meanwhile
    assert said[0].exc_info is None
    assert "answers again" in said[1].getMessage()
