"""Requests as handlers see them, and responses as bytes ready for the wire.

A response's status line and headers are encoded when it is built; only the
``connection`` header, which depends on the request, is added when it is written.
Constant responses are therefore built once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

KEEP_ALIVE_TAIL = b"\r\nconnection: keep-alive\r\n\r\n"
CLOSE_TAIL = b"\r\nconnection: close\r\n\r\n"
# RFC 9110: these never carry content, so they announce no length either.
_BODILESS = frozenset({204, 304})

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which would
# cost a microsecond per request. Treat both as immutable.
@dataclass(slots=True)
class Request:
    """What a handler gets to see of a request."""

    method: bytes
    path: bytes
    query: bytes
    content_type: bytes | None = None
    body: bytes = b""
    # Every header (names lower-cased) where the server keeps them (``KeepingHeaders``);
    # None elsewhere: the targets' hot path reads only the two it needs.
    headers: dict[bytes, bytes] | None = None


@dataclass(slots=True)
class Response:
    """Status line and headers (without ``connection``), and the body.

    ``counted`` is false for responses that are not traffic, such as metric scrapes.
    """

    status: int
    head: bytes
    body: bytes
    counted: bool = True


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # unregistered codes are valid; the phrase may be empty
        return ""


def encode_response(
    status: int,
    content_type: str,
    body: bytes,
    headers: Iterable[tuple[str, str]] = (),
    *,
    counted: bool = True,
    interim: int | None = None,
) -> Response:
    """Encode a response; ``interim`` puts a 1xx response (no headers) in front of it."""
    lines = [f"HTTP/1.1 {status} {reason_phrase(status)}"]
    if status in _BODILESS:
        body = b""
    else:
        lines += [f"content-type: {content_type}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    head = "\r\n".join(lines).encode("latin-1")
    if interim is not None:
        head = f"HTTP/1.1 {interim} {reason_phrase(interim)}\r\n\r\n".encode("latin-1") + head
    return Response(int(status), head, body, counted)


def text_response(status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return encode_response(status, TEXT, text.encode(), headers)


def json_response(
    status: int, payload: object, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return encode_response(status, JSON, body, headers)


def detail(status: int, message: str) -> Response:
    """The error shape of LatLab's services (and FastAPI's): ``{"detail": message}``."""
    return json_response(status, {"detail": message})


BAD_REQUEST = detail(HTTPStatus.BAD_REQUEST, "Bad Request")
NOT_FOUND = detail(HTTPStatus.NOT_FOUND, "Not Found")
URI_TOO_LONG = detail(HTTPStatus.REQUEST_URI_TOO_LONG, "URI Too Long")
CONTENT_TOO_LARGE = detail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Content Too Large")
HEADERS_TOO_LARGE = detail(
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request Header Fields Too Large"
)
INTERNAL_ERROR = detail(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
TOO_MANY_CONNECTIONS = json_response(
    HTTPStatus.SERVICE_UNAVAILABLE, {"detail": "Too many connections"}, [("retry-after", "1")]
)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
