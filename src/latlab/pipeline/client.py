"""The client service: ``GET /?connection_count=&connection_value=&delay_range=`` sends a
run of requests to the receiver and answers once every one is acknowledged.

Parameters as the original's (defaults 10, 10, 5), checked before anything is sent: a
mistake is a 422 naming the parameter. ``delay_unit=ms`` makes the delays milliseconds.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs

from latlab.measure.load.preflight import (
    TargetRefused,
    TargetUnreachable,
    check_reachable,
    resolve_target,
)
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import Url
from latlab.pipeline.guard import TrafficGuard
from latlab.pipeline.receipts import BadRequest
from latlab.pipeline.sender import SendPlan, SendResult, send_requests
from latlab.pipeline.status import service_stats
from latlab.serving.routes import Answer, Router, route
from latlab.serving.wire import Request, Response, detail, json_response

UNITS_S = {"s": 1.0, "ms": 0.001}
DEFAULTS = {"connection_count": 10, "connection_value": 10, "delay_range": 5}


@dataclass(frozen=True)
class ClientLimits:
    max_connections: int
    max_requests: int
    max_delay_s: float


@dataclass(frozen=True)
class ClientCall:
    connections: int
    requests: int
    delay_range: int
    delay_unit_s: float


def parse_call(query: bytes, limits: ClientLimits) -> ClientCall:
    """The call's parameters, or :class:`BadRequest` naming the one that is wrong."""
    try:
        given = parse_qs(query.decode(), keep_blank_values=True, strict_parsing=bool(query))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the query string cannot be read") from None
    unknown = sorted(set(given) - {*DEFAULTS, "delay_unit"})
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0][:40]!r}")
    repeated = sorted(name for name, values in given.items() if len(values) > 1)
    if repeated:
        raise BadRequest(f"{repeated[0]} is given more than once")
    unit_text = given.get("delay_unit", ["s"])[0]
    if unit_text not in UNITS_S:
        raise BadRequest("delay_unit must be s or ms")
    count = _integer(given, "connection_count", 1, limits.max_connections)
    value = _integer(given, "connection_value", 1, limits.max_requests)
    unit_s = UNITS_S[unit_text]
    delay_range = _integer(given, "delay_range", 0, int(limits.max_delay_s / unit_s) + 1)
    return ClientCall(count, value, delay_range, unit_s)


def _integer(given: dict[str, list[str]], name: str, low: int, high: int) -> int:
    text = given.get(name, [str(DEFAULTS[name])])[0]
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise BadRequest(f"{name} must be a whole number, not {text[:40]!r}")
    number = int(text)
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return number


Started = Callable[[SendPlan], Awaitable[None]]  # awaited before the first request
Finished = Callable[[SendResult], Awaitable[None] | None]  # awaited if it returns an awaitable


class Client:
    """Sends to ``receiver`` (its ``/handler`` URL) where ``policy`` allows."""

    def __init__(
        self,
        receiver: Url,
        policy: TargetPolicy,
        limits: ClientLimits,
        *,
        timeout_s: float = 10.0,
        finished: Finished | None = None,
        started: Started | None = None,
        guard: TrafficGuard | None = None,
        token: str | None = None,
        services: dict[str, str] | None = None,
    ) -> None:
        self.receiver = receiver
        self.policy = policy
        self.limits = limits
        self._timeout_s = timeout_s
        self._finished = finished
        self._started = started
        self._guard = guard
        self._token = token  # what the receiver asks for, when the API has a token
        self._services = services or {}  # role -> base URL, for /stats
        self.acked = self.errors = 0
        self.runs = 0

    def router(self) -> Router:
        return Router({b"/": route(self.handle), b"/stats": route(self.stats)})

    def stats(self, request: Request) -> Answer:
        refusal = self._guard.refusal(request) if self._guard is not None else None
        return refusal if refusal is not None else self._stats()

    async def _stats(self) -> Response:
        names = list(self._services)
        found = await asyncio.gather(*(service_stats(self._services[n]) for n in names))
        own = {"runs": self.runs, "acked": self.acked, "errors": self.errors}
        return json_response(HTTPStatus.OK, {"client": own, **dict(zip(names, found, strict=True))})

    def handle(self, request: Request) -> Answer:
        refusal = self._guard.refusal(request) if self._guard is not None else None
        if refusal is not None:
            return refusal
        try:
            call = parse_call(request.query, self.limits)
        except BadRequest as exc:
            return detail(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
        return self._run(call)

    async def _run(self, call: ClientCall) -> Response:
        try:
            address = await self.reach()
        except (TargetRefused, TargetUnreachable) as exc:
            return detail(HTTPStatus.BAD_GATEWAY, f"receiver {self.receiver.authority}: {exc}")
        result = await self.send(call, address)
        return json_response(HTTPStatus.OK, result.to_json())

    async def reach(self) -> tuple[int, str]:
        """The receiver's address, once the policy allows it and it answers: a run that
        could send nothing is refused before its first request."""
        address = await resolve_target(self.receiver, self.policy)
        await check_reachable(self.receiver, address, None, self._timeout_s)
        return address

    async def send(self, call: ClientCall, address: tuple[int, str]) -> SendResult:
        plan = SendPlan(
            url=self.receiver,
            requests=call.requests,
            connections=call.connections,
            delay_range=call.delay_range,
            delay_unit_s=call.delay_unit_s,
            run_id=secrets.token_hex(8),
            timeout_s=self._timeout_s,
            token=self._token,
        )
        self.runs += 1
        if self._started is not None:
            await self._started(plan)
        result = await send_requests(plan, address)
        self.acked += result.acked
        self.errors += result.errors
        if self._finished is not None:
            pending = self._finished(result)
            if inspect.isawaitable(pending):
                await pending
        return result
