"""``GET /test`` (seed 001) in one process: works never overlap and run in arrival order.

The seed judged this by consecutive ``elapsed`` values differing by at least the work's
duration, which fails when requests sent "together" arrive a few milliseconds apart. Each
answer carries its ticket and the times of arrival, ticket, work start and work end, so the
tests check the property itself.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator

import pytest
from clients import Work, assert_fifo, assert_serialized, metric, simultaneous, wait_metric
from running import serving, settings_for

from serving.http_client import Answer, connect, exchange, get, read_answer


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """The targets, in the test's loop, on a free port."""
    async with serving(settings_for()) as bound:
        yield bound


WORK_S = 0.05


@pytest.mark.parametrize("count", [2, 4, 8, 16])
async def test_simultaneous_requests_work_one_at_a_time_in_arrival_order(count: int) -> None:

    async with serving(settings_for(targets_work_s=WORK_S)) as port:
        works = await simultaneous(port, count)
    assert_serialized(works, WORK_S)
    assert_fifo(works)
    # In one process a ticket is taken as the request is parsed: arrival order is ticket order.
    assert sorted(works, key=lambda w: w.arrived) == sorted(works, key=lambda w: w.started)
    assert sorted(w.ticket for w in works) == list(range(1, count + 1))


async def test_the_seeds_criterion_holds_once_arrival_spread_is_counted() -> None:
    # Seed 001: consecutive elapsed differ by >= the work. Exactly: by >= the work minus
    # the time between the two arrivals, which the seed took for zero.
    async with serving(settings_for(targets_work_s=WORK_S)) as port:
        works = sorted(await simultaneous(port, 8), key=lambda w: w.started)
    for before, after in itertools.pairwise(works):
        spread = after.arrived - before.arrived
        assert after.elapsed - before.elapsed >= WORK_S - spread - 0.001


async def test_elapsed_is_the_work_alone_when_nobody_waits(port: int) -> None:
    work = Work.of(await exchange(port, get("/test")))
    assert 0.1 <= work.elapsed < 0.2
    assert work.queued - work.arrived < 0.05


async def test_a_client_leaving_while_waiting_gives_up_its_place() -> None:
    work_s = 0.5
    async with serving(settings_for(targets_work_s=work_s)) as port:
        streams = []
        for taken in (1, 2, 3):  # A works, B and C wait, in that order
            streams.append(await asyncio.open_connection("127.0.0.1", port))
            streams[-1][1].write(get("/test"))
            await wait_metric(port, "latlab_target_test_tickets_total", taken)
        leaver = streams.pop(1)[1]
        leaver.transport.abort()  # B disconnects before its turn
        await wait_metric(port, "latlab_target_test_abandoned_total", 1)
        first, third = [Work.of(await read_answer(reader)) for reader, _ in streams]
        assert await metric(port, "latlab_target_test_queued") == 0
        for _, writer in streams:
            writer.close()
    assert (first.ticket, third.ticket) == (1, 3)
    assert third.started - first.ended < work_s / 2  # B's turn was skipped, not worked


async def test_a_second_request_on_one_connection_waits_in_line_too(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(get("/test") + get("/test"))
        first, second = [Work.of(await read_answer(reader)) for _ in range(2)]
    assert first.ended <= second.started


async def test_an_unreachable_queue_answers_503() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings = settings_for(redis_url=f"redis://127.0.0.1:{dead_port}/0")
    async with serving(settings) as port:
        answer: Answer = await exchange(port, get("/test"))
    assert answer.status == 503
    assert "queue" in str(answer.json())
