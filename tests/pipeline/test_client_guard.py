"""The client's ``GET /`` sends traffic: it follows the control API's Host, token and Origin
rules, and a refused call sends nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from latlab.pipeline.services import ALL_ROLES, Pipeline, Role, open_pipeline
from pipeline_files import pipeline_settings
from services import free_port

CALL = "/?connection_count=1&connection_value=2&delay_range=0"
TOKEN = "s3cret-token"


@pytest.fixture
async def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pipeline]:
    extra = getattr(request, "param", {})
    async with open_pipeline(pipeline_settings(tmp_path, **extra), ALL_ROLES) as opened:
        yield opened


async def get(pipeline: Pipeline, headers: dict[str, str]) -> httpx.Response:
    base = f"http://127.0.0.1:{pipeline.port(Role.CLIENT)}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return await http.get(CALL, headers=headers)


def received(pipeline: Pipeline) -> int:
    assert pipeline.receiver is not None
    return pipeline.receiver.received


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_a_cross_site_call_is_refused_with_403_and_sends_nothing(
    pipeline: Pipeline, headers: dict[str, str]
) -> None:
    answer = await get(pipeline, headers)
    assert answer.status_code == 403
    assert received(pipeline) == 0


async def test_a_foreign_host_is_refused_with_400_without_a_token(pipeline: Pipeline) -> None:
    answer = await get(pipeline, {"Host": "rebound.example"})
    assert answer.status_code == 400
    assert received(pipeline) == 0


async def test_a_same_origin_call_is_served(pipeline: Pipeline) -> None:
    origin = f"http://127.0.0.1:{pipeline.port(Role.CLIENT)}"
    answer = await get(pipeline, {"Origin": origin, "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 200
    assert answer.json()["acked"] == 2


@pytest.mark.parametrize("pipeline", [{"api_token": TOKEN}], indirect=True)
async def test_with_a_token_a_call_without_it_gets_401(pipeline: Pipeline) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = await get(pipeline, headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
    assert received(pipeline) == 0
    answer = await get(pipeline, {"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.json()["acked"] == 2  # the client gave the receiver the token too


async def test_a_receiver_that_does_not_answer_gets_502_and_nothing_sent(tmp_path: Path) -> None:
    receiver = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = pipeline_settings(tmp_path, pipeline_receiver_url=receiver)
    async with open_pipeline(settings, [Role.CLIENT]) as alone:
        answer = await get(alone, {})
    assert answer.status_code == 502
    assert "cannot reach" in answer.json()["detail"]
