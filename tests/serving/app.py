"""A small service built from ``latlab.serving`` alone, as the pipeline's services are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from latlab.serving.routes import Router, route
from latlab.serving.server import HttpServer
from latlab.serving.wire import TEXT, Request, Response, detail, encode_response, json_response

PONG = json_response(HTTPStatus.OK, {"message": "pong"})
UNCOUNTED = encode_response(HTTPStatus.OK, TEXT, b"not traffic", counted=False)


def _number(request: Request, prefix: bytes) -> int:
    return int(request.path.removeprefix(prefix))


async def delay(request: Request) -> Response:
    """``/delay?ms=N``: answer after N ms."""
    ms = float(request.query.removeprefix(b"ms=") or 0)
    await asyncio.sleep(ms / 1000)
    return json_response(HTTPStatus.OK, {"delayed_ms": ms})


def echo(request: Request) -> Response:
    """``POST /echo``: the body back, with its content type."""
    content_type = (request.content_type or b"application/octet-stream").decode("latin-1")
    return encode_response(HTTPStatus.OK, content_type, request.body)


def sized(request: Request) -> Response:
    """``/bytes/N``: N bytes."""
    body = b"x" * _number(request, b"/bytes/")
    return encode_response(HTTPStatus.OK, "application/octet-stream", body)


def status(request: Request) -> Response:
    """``/status/N``: that status."""
    return detail(_number(request, b"/status/"), "as asked")


def boom(_request: Request) -> Response:
    raise RuntimeError("boom")


async def late_boom(_request: Request) -> Response:
    await asyncio.sleep(0.01)
    raise RuntimeError("late boom")


def later(request: Request) -> asyncio.Future[Response]:
    """``/later?ms=N``: a future a timer answers after N ms (no task of its own)."""
    ms = float(request.query.removeprefix(b"ms=") or 0)
    answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    settled = json_response(HTTPStatus.OK, {"later_ms": ms})
    asyncio.get_running_loop().call_later(ms / 1000, _settle, answer, settled)
    return answer


def failed_later(_request: Request) -> asyncio.Future[Response]:
    answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(_settle, answer, RuntimeError("failed later"))
    return answer


def _settle(answer: asyncio.Future[Response], outcome: Response | Exception) -> None:
    if answer.done():  # cancelled: its client left
        return
    if isinstance(outcome, Exception):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)


def build_router() -> Router:
    exact = {
        b"/": route(lambda _request: PONG),
        b"/delay": route(delay),
        b"/echo": route(echo, ("POST",)),
        b"/uncounted": route(lambda _request: UNCOUNTED),
        b"/sync-boom": route(boom),
        b"/async-boom": route(late_boom),
        b"/later": route(later),
        b"/failed-later": route(failed_later),
    }
    return Router(exact, [(b"/bytes/", route(sized)), (b"/status/", route(status))])


@asynccontextmanager
async def serving(server: HttpServer | None = None) -> AsyncIterator[HttpServer]:
    """Serve until the block ends; fails the test if an exception reached the loop."""
    server = server or HttpServer(build_router())
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    try:
        await server.listen("127.0.0.1", 0)
        try:
            yield server
        finally:
            await server.close()
    finally:
        loop.set_exception_handler(None)
    assert escaped == []
