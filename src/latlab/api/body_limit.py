"""A request body limit, enforced before anything parses the body (413 past it).

A 12 MB JSON body of a million unknown keys once held the event loop 36-40 s while pydantic
built a 125 MB error. Here a declared ``Content-Length`` over the limit is refused at once, and
a streamed (chunked) body is counted as it arrives and refused as soon as it passes the limit:
at most ``limit`` bytes are ever held, and the route only sees a body that fits.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latlab.settings import Settings

# The bulk create takes up to 10,000 experiments in one body.
BULK_ROUTES = frozenset({("POST", "/api/v1/experiments"), ("POST", "/api/v1/experiments/")})


class BodyTooLarge(Exception):
    """The body passed its limit while being read."""


class BodyLimitMiddleware:
    """413 for bodies over ``max_body_bytes`` (``max_bulk_body_bytes`` on the bulk route)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.default_bytes = settings.max_body_bytes
        self.route_bytes: Mapping[tuple[str, str], int] = dict.fromkeys(
            BULK_ROUTES, settings.max_bulk_body_bytes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.route_bytes.get((scope["method"], scope["path"]), self.default_bytes)
        declared, streamed = _body_headers(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        if declared is None and not streamed:  # no body: nothing to count
            await self.app(scope, receive, send)
            return
        try:
            first = await _read_body(receive, limit)
        except BodyTooLarge:
            await _too_large(limit)(scope, receive, send)
            return
        await self.app(scope, _replay(first, receive), send)


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length if given and valid, whether the body must be counted as it comes)."""
    declared: int | None = None
    streamed = False
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip().isdigit():
            declared = int(value)
        elif name in (b"transfer-encoding", b"content-length"):  # chunked, or a length not to trust
            streamed = True
    return declared, streamed


async def _read_body(receive: Receive, limit: int) -> Message:
    """The whole body as one ``http.request`` message; BodyTooLarge as soon as it passes ``limit``.

    A disconnect is handed on as it came, for the route to see.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}


def _replay(first: Message, receive: Receive) -> Receive:
    """``receive`` that answers ``first`` once, then defers to the server's."""
    pending: list[Message] = [first]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


def _too_large(limit: int) -> JSONResponse:
    # The server discards the rest of the body, so the client can finish sending and read this.
    detail = f"request body too large: at most {limit} bytes here"
    return JSONResponse({"detail": detail}, status_code=413)
