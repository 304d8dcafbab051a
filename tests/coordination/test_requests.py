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


async def test_stray_messages_are_skipped_and_questions_still_answered(
    client: aioredis.Redis,
) -> None:
    """Found in review: one malformed question stopped the answering (and lost the next),
    and a question could name any channel to be answered on."""
    prefix = f"ask-{secrets.token_hex(4)}"
    requests, tasks = await serving(client, prefix, runs({1}, "a"))
    stray = [
        "not json",
        "[1, 2]",
        '{"reply": "x", "kind": "load", "id": "1", "body": {}}',
        '{"reply": "' + prefix + ':answers:x", "kind": "load", "id": 1, "body": [1]}',
        '{"reply": "' + prefix + ':jobs:halted", "kind": "load", "id": 1, "body": {}}',
    ]
    for message in stray:
        await client.publish(f"{prefix}:asks", message)
    answered = await requests.ask("load", 1, {"rate": 5.0})
    alive = not tasks[0].done()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert alive
    assert answered == {"by": "a", "got": {"rate": 5.0}}


async def test_a_question_whose_answer_waits_holds_up_no_other(client: aioredis.Redis) -> None:
    """Found in review: questions were answered one at a time, so one that waited (for a
    load run's pool to start, up to half a second) made the next wait behind it."""
    answering_one, release = asyncio.Event(), asyncio.Event()

    async def answer(kind: str, job_id: int, body: Body) -> Body | None:
        if job_id == 1:
            answering_one.set()
            await release.wait()  # a pool that is slow to start
        return {"job": job_id}

    requests, tasks = await serving(client, f"ask-{secrets.token_hex(4)}", answer)
    waiting = asyncio.create_task(requests.ask("load", 1, {"rate": 1.0}, timeout_s=5))
    await asyncio.wait_for(answering_one.wait(), 5)
    other = await requests.ask("load", 2, {"rate": 1.0}, timeout_s=2)
    release.set()
    first = await waiting
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert other == {"job": 2}
    assert first == {"job": 1}
