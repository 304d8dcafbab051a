"""Questions to whichever process runs a job, over the local Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from harness import wait_for
from latlab.coordination.redis import open_client
from latlab.coordination.requests import Answerer, Body, OwnerRequests
from services import require_redis


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis = open_client(require_redis(), 1.0)
    yield redis
    await redis.aclose()


def runs(job_ids: set[int], name: str) -> Answerer:
    """An answerer for the load runs ``job_ids``, silent about any other job."""

    async def answer(kind: str, job_id: int, body: Body) -> Body | None:
        if kind != "load" or job_id not in job_ids:
            return None
        return {"by": name, "got": body}

    return answer


async def serving(
    client: aioredis.Redis, prefix: str, *answerers: Answerer
) -> tuple[OwnerRequests, list[asyncio.Task[None]]]:
    requests, channel = OwnerRequests(client, prefix), f"{prefix}:asks"
    tasks = [asyncio.create_task(requests.serve(answer)) for answer in answerers]

    async def listening() -> bool:
        return bool((await client.pubsub_numsub(channel))[0][1] >= len(tasks))

    await wait_for(listening, 5, "the answerers to listen")
    return requests, tasks


async def test_the_process_that_runs_the_job_answers_and_only_it(client: aioredis.Redis) -> None:
    prefix = f"ask-{secrets.token_hex(4)}"
    requests, tasks = await serving(client, prefix, runs({1}, "a"), runs({2}, "b"))
    first = await requests.ask("load", 2, {"rate": 300.0})
    second = await requests.ask("load", 1, {"connections": 4})
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert first == {"by": "b", "got": {"rate": 300.0}}
    assert second == {"by": "a", "got": {"connections": 4}}


async def test_a_job_nobody_runs_gets_no_answer_in_time(client: aioredis.Redis) -> None:
    requests, tasks = await serving(client, f"ask-{secrets.token_hex(4)}", runs({1}, "a"))
    unanswered = await requests.ask("load", 9, {"rate": 1.0}, timeout_s=0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert unanswered is None
