"""The control API's share of the process's connections, and a uvicorn protocol that keeps to it.

uvicorn accepts every connection and waits forever for a request head, so 1,100 sockets that
send nothing, under the common ``ulimit -n 1024``, took every descriptor of the process: the
API, the targets beside it and the probes all failed with "too many open files". Here:

- the descriptors left after the reserve (``serving.limits.connection_cap``) are split between
  the API and the targets, half each unless ``LATLAB_API_MAX_CONNECTIONS`` or
  ``LATLAB_TARGETS_MAX_CONNECTIONS`` takes its part; the other gets the rest;
- a connection arriving when the API already holds its cap is answered 503 and closed at once,
  so the descriptor is back before the next accept;
- a request head not complete ``header_timeout_s`` after the connection opened (or after the
  request's first byte, on a keep-alive connection) closes the connection: slowloris, and a
  connection that never sends. The timeout is ``LATLAB_TARGETS_HEADER_TIMEOUT_S`` (10 s by
  default): how long a request head may take is one figure for both servers of the process,
  and one setting rather than two keeps the slowloris bound in one place;
- uvicorn's own keep-alive timeout closes a connection idle between requests.

The cost per request is one timer armed and cancelled: about 2 µs on uvloop, where a request
through FastAPI costs hundreds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from latlab.serving.limits import connection_cap, raise_fd_limit
from latlab.settings import Settings

# uvicorn's default, passed explicitly: a connection idle this long between requests closes.
KEEP_ALIVE_S = 5

TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n"
)


@dataclass(frozen=True, slots=True)
class ConnectionBudget:
    """Most open connections for the API and, served in the same process, the targets."""

    api: int
    targets: int | None


def connection_budget(settings: Settings) -> ConnectionBudget:
    """Lift the soft descriptor limit to the hard one and share what the reserve leaves."""
    return share_connections(settings, connection_cap(raise_fd_limit()))


def share_connections(settings: Settings, available: int) -> ConnectionBudget:
    """``available`` connections: half each, or the rest of what a setting takes."""
    api, targets = settings.api_max_connections, settings.targets_max_connections
    if not settings.targets_enabled:
        return ConnectionBudget(api or available, None)
    if api is None and targets is None:
        api = max(1, available // 2)
    if api is None:
        assert targets is not None
        api = max(1, available - targets)
    return ConnectionBudget(api, targets or max(1, available - api))


class CappedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection cap and a request-head timeout; a
    subclass made by :func:`capped_protocol` sets the two figures."""

    max_connections: ClassVar[int] = 1
    header_timeout_s: ClassVar[float] = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.transport = transport  # connection_lost closes it (again)
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a later request on a kept-alive connection
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def capped_protocol(max_connections: int, header_timeout_s: float) -> type[CappedHttpToolsProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``."""
    figures = {"max_connections": max_connections, "header_timeout_s": header_timeout_s}
    return type("CappedHttpToolsProtocol", (CappedHttpToolsProtocol,), figures)
