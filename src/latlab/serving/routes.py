"""Routing: exact paths, then path prefixes, then a fallback.

A handler answers at once with a ``Response``, or returns a coroutine (run as a task) or a
future of this loop for answers that must wait; the server keeps pipelined answers in
request order either way. A future belongs to its request's connection, which cancels it if
the client leaves: one future per request, set only while not done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

from latlab.serving.wire import INTERNAL_ERROR, NOT_FOUND, Request, Response, json_response

logger = logging.getLogger(__name__)

# A future is answered by whoever sets it (no task of its own: the pipeline's receiver).
Answer = Response | Coroutine[Any, Any, Response] | asyncio.Future[Response]
Handler = Callable[[Request], Answer]


@dataclass(frozen=True, slots=True)
class Route:
    """A handler plus the methods it accepts and its pre-encoded 405 answer."""

    handler: Handler
    methods: frozenset[bytes]
    not_allowed: Response


def route(handler: Handler, methods: Iterable[str] = ("GET",)) -> Route:
    allowed = set(methods)
    if "GET" in allowed:
        allowed.add("HEAD")  # HTTP semantics: whatever answers GET answers HEAD
    listed = ", ".join(sorted(allowed))
    not_allowed = json_response(
        HTTPStatus.METHOD_NOT_ALLOWED, {"detail": "Method Not Allowed"}, [("allow", listed)]
    )
    return Route(handler, frozenset(m.encode("ascii") for m in allowed), not_allowed)


def _not_found(_request: Request) -> Response:
    return NOT_FOUND


# Every method may learn that nothing is there.
NOT_FOUND_ROUTE = route(_not_found, ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


class Router:
    """Exact paths win over prefixes (``/status/``), which win over the fallback (a 404
    unless given)."""

    def __init__(
        self,
        exact: Mapping[bytes, Route],
        prefixed: Sequence[tuple[bytes, Route]] = (),
        fallback: Route = NOT_FOUND_ROUTE,
    ) -> None:
        self._exact = MappingProxyType(dict(exact))
        self._prefixed = tuple(prefixed)
        self._fallback = fallback

    def dispatch(self, request: Request) -> Answer:
        """Answer one request; a failing handler becomes a 500, never an exception."""
        path = request.path
        found = self._exact.get(path)
        if found is None:
            found = self._fallback
            for prefix, prefixed in self._prefixed:
                if path.startswith(prefix):
                    found = prefixed
                    break
        if request.method not in found.methods:
            return found.not_allowed
        try:
            return found.handler(request)
        except Exception:
            logger.exception("handler for %r failed", request.path)
            return INTERNAL_ERROR
