"""The receiver takes only what a pipeline client sends: JSON, from this machine or a listed
host, not from a web page; a refused request enqueues nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from latlab.pipeline.services import Pipeline, Role, open_pipeline
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
