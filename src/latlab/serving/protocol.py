"""HTTP/1.1 on a raw asyncio protocol with httptools: the hot path of every LatLab service.

A request costs parsing, one route lookup, one counter increment and one transport write.
The counts are a plain list laid out by ``counting.py``, which the service may share with
counters of its own (the targets' shared table).
Handlers that must wait (``/test``, ``/delay``) return a coroutine that runs as a task, or
a future that something else sets (the pipeline's receiver); each connection keeps a queue
of pending answers so that pipelined responses still leave in request order, and a client
that disconnects cancels its pending answers (which is how a ``/test`` waiting in line
gives up its place).

A request head past its size or header count is a 431 (``limits.py``), counted as it
arrives: complete headers as httptools reports them, and a header it still holds by the
reads it spans. How answers leave, and why a client that reads nothing holds little, is
``answers.py``'s.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from latlab.serving.answers import Answers
from latlab.serving.connections import Connections
from latlab.serving.counting import METHOD_INDEX, OTHER_METHOD
from latlab.serving.limits import MAX_BODY_BYTES, MAX_PENDING, MAX_URL_BYTES, ServerLimits
from latlab.serving.routes import Router
from latlab.serving.wire import (
    BAD_REQUEST,
    CLOSE_TAIL,
    CONTENT_TOO_LARGE,
    CONTINUE,
    HEADERS_TOO_LARGE,
    TOO_MANY_CONNECTIONS,
    URI_TOO_LONG,
    Request,
    Response,
)

__all__ = ["MAX_BODY_BYTES", "MAX_PENDING", "MAX_URL_BYTES", "Connections", "HttpProtocol"]


# ``_head_read`` outside a request head, and in the read that began it.
_NO_HEAD = -2
_HEAD_BEGUN = -1


class _TooLargeError(Exception):
    pass


class HttpProtocol(Answers):
    """One client connection; each answer marked ``counted`` adds one to its cell of
    ``counts`` (``counting.request_cell``)."""

    __slots__ = (
        "_body",
        "_body_size",
        "_content_type",
        "_error",
        "_expect_continue",
        "_head_bytes",
        "_head_read",
        "_headers",
        "_in_message",
        "_keep_alive",
        "_kept_headers",
        "_max_head_bytes",
        "_max_headers",
        "_parser",
        "_quiet_ticks",
        "_seen_progress",
        "_url",
    )

    def __init__(
        self,
        router: Router,
        connections: Connections,
        counts: list[int],
        limits: ServerLimits | None = None,
    ) -> None:
        limits = limits or ServerLimits()
        super().__init__(router, connections, counts, limits)
        self._max_head_bytes = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._content_type: bytes | None = None
        self._expect_continue = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._error: Response | None = None
        self._keep_alive = True
        self._in_message = False
        self._head_bytes = 0  # of the head's complete headers
        self._headers = 0
        self._head_read = _NO_HEAD  # else bytes of the reads after the one it began in
        self._kept_headers: dict[bytes, bytes] | None = None  # see HeaderKeepingProtocol
        self._seen_progress = -1  # the sweep's last look
        self._quiet_ticks = 0

    @property
    def idle(self) -> bool:
        """Between requests, with nothing left to answer or write."""
        return not (self._in_message or self._pending or self._deferred or self._body_left)

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._send = self._transport.write
        if not self._connections.add(self):
            self._last_request_seen = True
            response = TOO_MANY_CONNECTIONS
            self._send(response.head + CLOSE_TAIL + response.body)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for answer, *_ in self._pending:
            if not isinstance(answer, Response):
                answer.cancel()
        self._pending.clear()
        self._deferred.clear()
        self._body_left = None
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._closed or self._last_request_seen:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Raised once the request is complete. Protocol switching is not offered: the
            # request is answered as a plain one, then the connection closes.
            self._answer_last(None)
            return
        except httptools.HttpParserError:
            self._answer_last(self._error or BAD_REQUEST)
            return
        if self._head_read != _NO_HEAD:  # the head goes on past this read
            # httptools holds an unfinished header and reports it only whole: count the
            # reads it spans (all head but the one it began in).
            if self._head_read == _HEAD_BEGUN:
                self._head_read = 0
                return
            self._head_read += len(data)
            if self._head_read > self._max_head_bytes:
                self._answer_last(HEADERS_TOO_LARGE)

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        # Headers and body are reset once used (on_message_complete), not here: most
        # requests have neither, and every attribute store counts on this path.
        self._in_message = True
        self._url = b""
        self._head_bytes = self._headers = 0
        self._head_read = _HEAD_BEGUN
        self._progress += 1

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL_BYTES:
            self._error = URI_TOO_LONG
            raise _TooLargeError

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > self._max_head_bytes or self._headers > self._max_headers:
            self._error = HEADERS_TOO_LARGE
            raise _TooLargeError
        # Only two headers matter; the length test skips lower() for all the others.
        if len(name) == 12 and name.lower() == b"content-type":
            self._content_type = value
        elif len(name) == 6 and name.lower() == b"expect":
            self._expect_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self._head_read = _NO_HEAD
        self._keep_alive = self._parser.should_keep_alive()
        if self._expect_continue:
            self._expect_continue = False
            if not (self._pending or self._deferred) and self._transport is not None:
                self._transport.write(CONTINUE)  # curl waits a second for this before a body

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY_BYTES:
            self._error = CONTENT_TOO_LARGE
            raise _TooLargeError
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._last_request_seen:
            return
        method = self._parser.get_method()
        path, _, query = self._url.partition(b"?")
        content_type, body = self._content_type, b""
        if content_type is not None:
            self._content_type = None
        if self._body:
            body, self._body, self._body_size = b"".join(self._body), [], 0
        request = Request(method, path, query, content_type, body, self._kept_headers)
        keep_alive = self._keep_alive
        if not keep_alive:
            self._last_request_seen = True  # requests pipelined behind it are dropped
        head_only = method == b"HEAD"
        method_index = METHOD_INDEX.get(method, OTHER_METHOD)
        if self._pending or self._write_paused:  # its turn comes once those are written
            self._deferred.append((request, keep_alive, head_only, method_index))
            self._flush()
            return
        answer = self._router.dispatch(request)
        if isinstance(answer, Response):
            self._write(answer, keep_alive, head_only, method_index)
            return
        self._pending.append((self._start(answer), keep_alive, head_only, method_index))
        self._update_reading()

    # -- timeouts ---------------------------------------------------------------------

    def on_tick(self, header_ticks: int, idle_ticks: int) -> None:
        """The sweep's look: close a connection stuck in a state that must not last."""
        if self._progress != self._seen_progress:
            self._seen_progress, self._quiet_ticks = self._progress, 0
            return
        if self._in_message or self._progress == 0:
            limit = header_ticks  # a request still arriving (or never begun)
        elif self._write_paused or self.idle:
            limit = idle_ticks  # nothing to do, or a client that reads none of its answers
        else:
            self._quiet_ticks = 0  # answers being prepared: /test in line, a long /delay
            return
        self._quiet_ticks += 1
        if self._quiet_ticks >= limit:
            self.abort()


class HeaderKeepingProtocol(HttpProtocol):
    """A connection whose requests carry all their headers (``Request.headers``), for a
    service that checks ``Authorization`` or ``Origin``; not the targets' hot path."""

    __slots__ = ()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._kept_headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        assert self._kept_headers is not None
        self._kept_headers[name.lower()] = value
