"""Connections of the load engine: an asyncio protocol per TCP connection, fed to httptools.

Callbacks, not coroutines: a response is parsed in ``data_received`` and the next request is
written from the same call, so a request costs no task switch. Bodies are never kept (the
parser is given no body callback). A :class:`Slot` is one of the run's ``-c`` connections
over time: its schedule survives the TCP connections it goes through.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Protocol, cast

import httptools

from latlab.measure.errors import ErrorKind, error_kind
from latlab.measure.http_probe import describe_error


class Outcomes(Protocol):
    """What a connection reports to (the load worker)."""

    def completed(self, conn: LoadConnection, status: int, done_s: float) -> None: ...

    def failed(self, conn: LoadConnection, kind: ErrorKind, text: str) -> None: ...

    def dropped(self, conn: LoadConnection) -> None:
        """An idle connection closed."""
        ...

    def resend(self, conn: LoadConnection) -> None:
        """The server closed a kept-alive connection as the request went out."""
        ...


class Slot:
    """One of the worker's connections: its current TCP connection and its send schedule."""

    __slots__ = ("conn", "connecting", "index", "intended_s", "interval_s", "retiring", "timer")

    def __init__(self, index: int) -> None:
        self.index = index
        self.conn: LoadConnection | None = None
        self.connecting = False
        self.intended_s = 0.0  # open model: when the next request should leave
        self.interval_s = 0.0  # open model: time between this slot's sends
        self.timer: asyncio.TimerHandle | None = None
        self.retiring = False  # fewer connections asked for: closes once idle

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class LoadConnection(asyncio.Protocol):
    """One TCP connection of a slot; reports each outcome to the worker, then is done with."""

    head_only = False  # a HEAD answer has no body whatever its headers say

    def __init__(self, worker: Outcomes, slot: Slot) -> None:
        self.worker = worker
        self.slot = slot
        self.transport: asyncio.Transport | None = None
        self.in_flight = False
        self.sent_s = 0.0
        self.counted = False  # sent after the warm-up: its outcome is one of the run's
        self.intended_s = 0.0
        self.served = 0
        self._parser = httptools.HttpResponseParser(self)
        self._got_bytes = False
        self._dead = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("protocol upgrade not supported")
        except httptools.HttpParserError as exc:
            if not self._dead:
                self._fail(f"invalid HTTP response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._dead:
            return
        self._dead = True
        self.transport = None
        if not self.in_flight:
            self.worker.dropped(self)
        elif not self._got_bytes and self.served:
            # The server closed the kept-alive connection as we sent: not the request's fault.
            self.in_flight = False
            self.worker.resend(self)
        else:
            self.in_flight = False
            text = describe_error(exc) if exc is not None else "server closed connection"
            self.worker.failed(self, error_kind(text), text)

    def on_message_complete(self) -> None:
        if not self.in_flight:
            return  # an answer to nothing, or the HEAD answer already counted
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return  # interim (100 Continue): the final response follows
        done_s = perf_counter()
        self.in_flight = False
        self._got_bytes = False
        self.served += 1
        keep = self._parser.should_keep_alive()
        if self.head_only:
            self._parser = httptools.HttpResponseParser(self)
        if not keep:
            self.close()
        self.worker.completed(self, status, done_s)

    def send(self, request: bytes, intended_s: float, counted: bool) -> None:
        assert self.transport is not None
        self.in_flight = True
        self.counted = counted
        self.intended_s = intended_s
        self.sent_s = perf_counter()
        self.transport.write(request)

    @property
    def alive(self) -> bool:
        return not self._dead

    def close(self) -> None:
        """Done with this connection (no outcome is reported for it any more)."""
        self._dead = True
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()

    def timed_out(self, text: str) -> None:
        self._fail(text)

    def _fail(self, text: str) -> None:
        if self._dead:
            return
        was_in_flight, self.in_flight = self.in_flight, False
        self.close()
        if was_in_flight:
            self.worker.failed(self, error_kind(text), text)
        else:
            self.worker.dropped(self)


class HeadLoadConnection(LoadConnection):
    """A connection sending HEAD: its answer is complete with its headers.

    Only this class has ``on_headers_complete``: httptools calls the callbacks a protocol
    has, and for every other method that call per response would be wasted.
    """

    head_only = True

    def on_headers_complete(self) -> None:
        self.on_message_complete()
