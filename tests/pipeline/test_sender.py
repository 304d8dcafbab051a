"""The pipeline client's sending engine against a real receiver stand-in on the serving kit."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import pytest

from latlab.measure.request import parse_url
from latlab.pipeline.receipts import Incoming, parse_request
from latlab.pipeline.sender import SendPlan, SendResult, send_requests
from latlab.serving.protocol import HttpProtocol
from latlab.serving.routes import Router, route
from latlab.serving.server import HttpServer
from latlab.serving.wire import Request, Response, json_response

MAX_DELAY_S = 1000.0
ACK = json_response(HTTPStatus.OK, {"asyncAnswer": "Ok"})
LOOPBACK = (int(socket.AF_INET), "127.0.0.1")

# What the stand-in answers the n-th request (0-based) with: now, or once a coroutine ends.
Answerer = Callable[[int], Response | Coroutine[Any, Any, Response]]


class CountingServer(HttpServer):
    """An HttpServer that counts the connections it accepts."""

    connections_made = 0

    def _connection(self) -> HttpProtocol:
        self.connections_made += 1
        return super()._connection()


@dataclass
class Receiver:
    server: CountingServer
    arrivals: list[Incoming] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port


@asynccontextmanager
async def receiving(answer: Answerer = lambda _n: ACK) -> AsyncIterator[Receiver]:
    """A receiver stand-in: parses each POST /handler as the receiver does, records it,
    answers what ``answer`` says."""
    receiver: Receiver

    def handler(request: Request) -> Any:
        arrived = parse_request(request.body, MAX_DELAY_S, datetime.now(UTC))
        receiver.arrivals.append(arrived)
        receiver.bodies.append(json.loads(request.body))
        return answer(len(receiver.arrivals) - 1)

    server = CountingServer(Router({b"/handler": route(handler, ("POST",))}))
    receiver = Receiver(server)
    escaped: list[dict[str, Any]] = []  # a callback's exception would only be logged
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: escaped.append(context))
    await server.listen("127.0.0.1", 0)
    try:
        yield receiver
    finally:
        await server.close(grace_s=0.5)
    assert escaped == []


def plan_for(port: int, requests: int, connections: int, **options: Any) -> SendPlan:
    settings: dict[str, Any] = {"delay_range": 0, "delay_unit_s": 1.0, "run_id": "run-1"}
    settings.update(options)
    url = parse_url(f"http://127.0.0.1:{port}/handler")
    return SendPlan(url, requests, connections, **settings)


async def send(receiver: Receiver, requests: int, connections: int, **options: Any) -> SendResult:
    seed = options.pop("seed", 7)
    plan = plan_for(receiver.port, requests, connections, **options)
    return await send_requests(plan, LOOPBACK, rng=random.Random(seed))


async def test_every_request_arrives_once_over_at_most_c_connections() -> None:
    async with receiving() as receiver:
        result = await send(receiver, 200, 10, delay_range=5)
    assert (result.sent, result.acked, result.errors) == (200, 200, 0)
    assert len(receiver.arrivals) == 200
    ids = [uuid.UUID(arrived.request_id) for arrived in receiver.arrivals]
    assert len(set(ids)) == 200
    assert {request_id.version for request_id in ids} == {4}
    assert {arrived.run_id for arrived in receiver.arrivals} == {"run-1"}
    # Whole seconds below the range, sent as JSON integers as the original client does.
    assert {body["request"]["delay"] for body in receiver.bodies} == {0, 1, 2, 3, 4}
    assert all(type(body["request"]["delay"]) is int for body in receiver.bodies)
    assert receiver.server.connections_made == 10


async def test_millisecond_delays_are_whole_milliseconds_below_the_range() -> None:
    async with receiving() as receiver:
        await send(receiver, 60, 3, delay_range=3, delay_unit_s=0.001)
    assert {arrived.delay_s for arrived in receiver.arrivals} == {0.0, 0.001, 0.002}


async def test_a_delay_range_of_zero_asks_for_no_delay() -> None:
    async with receiving() as receiver:
        await send(receiver, 20, 4, delay_range=0)
    assert {arrived.delay_s for arrived in receiver.arrivals} == {0.0}


async def test_one_connection_sends_in_order_on_one_connection() -> None:
    async with receiving() as receiver:
        await send(receiver, 5, 1, delay_range=1000, delay_unit_s=0.001, seed=3)
    # The delays come from the seeded generator in send order: arrival order is send order.
    expected = random.Random(3)
    assert [arrived.delay_s for arrived in receiver.arrivals] == [
        expected.randrange(1000) / 1000 for _ in range(5)
    ]
    assert receiver.server.connections_made == 1


async def test_fewer_requests_than_connections_open_one_connection_each() -> None:
    async with receiving() as receiver:
        result = await send(receiver, 3, 10)
    assert result.acked == 3
    assert receiver.server.connections_made == 3


async def test_a_500_is_an_error_and_the_send_still_ends() -> None:
    failing = json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"detail": "down"})
    async with receiving(lambda _n: failing) as receiver:
        result = await send(receiver, 30, 3)
    assert (result.sent, result.acked, result.errors) == (30, 0, 30)
    assert result.errors_by_kind == {"bad_status": 30}
    assert result.to_json()["ack_latency_ms"] == {"p50": None, "p99": None, "max": None}


async def test_a_200_without_the_acknowledgement_is_an_error() -> None:
    other = json_response(HTTPStatus.OK, {"something": "else"})
    async with receiving(lambda _n: other) as receiver:
        result = await send(receiver, 10, 2)
    assert (result.acked, result.errors) == (0, 10)


async def test_an_unanswered_request_times_out_as_an_error_and_its_connection_reopens() -> None:
    async def never() -> Response:
        await asyncio.Event().wait()  # cancelled by the server once the client gives up
        return ACK

    def answer(n: int) -> Response | Coroutine[Any, Any, Response]:
        return never() if n == 1 else ACK

    async with receiving(answer) as receiver:
        # 1 s, not less: a loaded machine once kept an answered request past 0.3 s.
        result = await send(receiver, 4, 1, timeout_s=1.0)
    assert (result.sent, result.acked, result.errors) == (4, 3, 1)
    assert result.errors_by_kind == {"timeout": 1}
    assert len(receiver.arrivals) == 4
    # The timed-out connection was closed; another was opened for the requests after it.
    assert receiver.server.connections_made == 2


async def test_to_json_reports_counts_and_ordered_ack_latencies() -> None:
    async with receiving() as receiver:
        report = (await send(receiver, 50, 5)).to_json()
    assert set(report) == {"run_id", "sent", "acked", "errors", "ack_latency_ms"}
    assert (report["run_id"], report["sent"], report["acked"], report["errors"]) == (
        "run-1",
        50,
        50,
        0,
    )
    latency = report["ack_latency_ms"]
    assert set(latency) == {"p50", "p99", "max"}
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]


async def test_progress_counts_every_outcome() -> None:
    seen: list[int] = []
    async with receiving() as receiver:
        plan = plan_for(receiver.port, 25, 4)
        await send_requests(plan, LOOPBACK, seen.append)
    assert seen == list(range(1, 26))


async def test_nothing_listening_makes_every_request_an_error(unused_port: int) -> None:
    result = await send_requests(plan_for(unused_port, 20, 4), LOOPBACK)
    assert (result.sent, result.acked, result.errors) == (20, 0, 20)
    assert result.errors_by_kind == {"refused": 20}


async def test_no_requests_sends_nothing(unused_port: int) -> None:
    result = await send_requests(plan_for(unused_port, 0, 4), LOOPBACK)
    assert (result.sent, result.acked, result.errors) == (0, 0, 0)


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        ({"requests": -1}, "requests"),
        ({"connections": 0}, "connections"),
        ({"delay_range": -1}, "delay_range"),
        ({"delay_range": float("nan")}, "delay_range"),
        ({"delay_unit_s": 0}, "delay_unit_s"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"run_id": ""}, "run_id"),
        ({"run_id": "r" * 65}, "run_id"),
    ],
)
def test_a_plan_out_of_bounds_is_refused(options: dict[str, Any], refusal: str) -> None:
    settings: dict[str, Any] = {"requests": 1, "connections": 1, **options}
    with pytest.raises(ValueError, match=refusal):
        plan_for(1, settings.pop("requests"), settings.pop("connections"), **settings)
