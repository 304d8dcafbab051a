"""Route table of the built-in target server.

Handlers are plain synchronous functions so that the server can answer pipelined
requests in order without queueing. Responses are encoded to wire bytes when they
are built; constant responses are therefore built once, at import time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler gets to see of a request."""

    method: bytes
    path: bytes
    query: bytes


@dataclass(frozen=True, slots=True)
class Response:
    """Complete wire bytes of one response, for both connection outcomes."""

    keep_alive: bytes
    close: bytes
    body_size: int

    def wire(self, *, keep_alive: bool, head_only: bool) -> bytes:
        data = self.keep_alive if keep_alive else self.close
        # A HEAD response announces the body's length but must not carry the body.
        return data[: len(data) - self.body_size] if head_only and self.body_size else data


def encode_response(
    status: int,
    content_type: str,
    body: bytes,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """Encode a response once; both connection variants share everything but one header."""
    phrase = HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"content-type: {content_type}",
        f"content-length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    head = "\r\n".join(lines).encode("latin-1")
    return Response(
        keep_alive=head + b"\r\nconnection: keep-alive\r\n\r\n" + body,
        close=head + b"\r\nconnection: close\r\n\r\n" + body,
        body_size=len(body),
    )


def json_response(
    status: int, payload: object, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return encode_response(status, "application/json", body, headers)


Handler = Callable[[Request], Response]


@dataclass(frozen=True, slots=True)
class Route:
    """A handler plus the methods it accepts and its pre-encoded 405 answer."""

    handler: Handler
    methods: frozenset[bytes]
    not_allowed: Response


def route(handler: Handler, methods: Iterable[str] = ("GET",)) -> Route:
    allowed = sorted(set(methods))
    not_allowed = json_response(
        HTTPStatus.METHOD_NOT_ALLOWED,
        {"detail": "Method Not Allowed"},
        headers=[("allow", ", ".join(allowed))],
    )
    return Route(handler, frozenset(m.encode("ascii") for m in allowed), not_allowed)


BAD_REQUEST = json_response(HTTPStatus.BAD_REQUEST, {"detail": "Bad Request"})
NOT_FOUND = json_response(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})
INTERNAL_ERROR = json_response(
    HTTPStatus.INTERNAL_SERVER_ERROR, {"detail": "Internal Server Error"}
)
PONG = json_response(HTTPStatus.OK, {"message": "pong"})


def latency(_request: Request) -> Response:
    return PONG


ROUTES: Mapping[bytes, Route] = MappingProxyType(
    {
        b"/api/latency": route(latency),
    }
)


def dispatch(routes: Mapping[bytes, Route], method: bytes, url: bytes) -> Response:
    """Answer one request; handler failures become a 500, never an exception."""
    path, _, query = url.partition(b"?")
    found = routes.get(path)
    if found is None:
        return NOT_FOUND
    if method not in found.methods:
        return found.not_allowed
    try:
        return found.handler(Request(method, path, query))
    except Exception:
        logger.exception("target handler for %r failed", path)
        return INTERNAL_ERROR
