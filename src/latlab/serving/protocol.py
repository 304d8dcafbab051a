"""HTTP/1.1 on a raw asyncio protocol with httptools: the hot path of every LatLab service.

A request costs parsing, one route lookup, one counter increment and one transport write.
The counts are a plain list laid out by ``counting.py``, which the service may share with
counters of its own (the targets' shared table).
Handlers that must wait (``/test``, ``/delay``) return a coroutine that runs as a task;
each connection keeps a queue of pending answers so that pipelined responses still
leave in request order, and a client that disconnects cancels its pending tasks (which
is how a ``/test`` waiting in line gives up its place).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import cast

import httptools

from latlab.serving.counting import METHOD_INDEX, OTHER_METHOD, STATUS_CLASSES
from latlab.serving.routes import Router
from latlab.serving.wire import (
    BAD_REQUEST,
    CLOSE_TAIL,
    CONTENT_TOO_LARGE,
    CONTINUE,
    INTERNAL_ERROR,
    KEEP_ALIVE_TAIL,
    URI_TOO_LONG,
    Request,
    Response,
)

logger = logging.getLogger(__name__)

# Longer request targets and bodies are refused rather than buffered without bound.
MAX_URL_BYTES = 8192
MAX_BODY_BYTES = 1024 * 1024
# A client pipelining more unanswered requests than this waits until answers leave.
MAX_PENDING = 64

_CLASSES = len(STATUS_CLASSES)
_Answer = Response | asyncio.Task[Response]
_Pending = tuple[_Answer, bool, bool, int]  # answer, keep-alive, HEAD, method index


class Connections:
    """The open connections of one server: they add and discard themselves, and ``drain``
    ends them all at shutdown, busy ones last."""

    def __init__(self) -> None:
        self._open: set[HttpProtocol] = set()
        self._all_closed: asyncio.Event | None = None
        self.draining = False

    def add(self, connection: HttpProtocol) -> None:
        self._open.add(connection)

    def discard(self, connection: HttpProtocol) -> None:
        self._open.discard(connection)
        if not self._open and self._all_closed is not None:
            self._all_closed.set()

    async def drain(self, grace_s: float) -> None:
        """Close idle connections now, busy ones once answered or after ``grace_s``."""
        self.draining = True  # a busy connection closes itself after its last answer
        self._all_closed = asyncio.Event()
        for connection in list(self._open):
            if connection.idle:
                connection.close()
        if self._open:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace_s)
        for connection in list(self._open):
            connection.close()
        if self._open:  # let the transports report the loss before the loop moves on
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), 1.0)


class _TooLargeError(Exception):
    pass


class HttpProtocol(asyncio.Protocol):
    """One client connection; each answer marked ``counted`` adds one to its cell of
    ``counts`` (``counting.request_cell``)."""

    def __init__(self, router: Router, connections: Connections, counts: list[int]) -> None:
        self._router = router
        self._connections = connections
        self._counts = counts
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._pending: deque[_Pending] = deque()
        self._url = b""
        self._content_type: bytes | None = None
        self._expect_continue = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._error: Response | None = None
        self._keep_alive = True
        self._in_message = False
        self._last_request_seen = False  # Connection: close or an error: read no further
        self._closed = False
        self._write_paused = False
        self._read_paused = False

    @property
    def idle(self) -> bool:
        return not (self._in_message or self._pending)

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._send = self._transport.write
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for answer, *_ in self._pending:
            if not isinstance(answer, Response):
                answer.cancel()
        self._pending.clear()
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
        except httptools.HttpParserError:
            self._answer_last(self._error or BAD_REQUEST)

    def pause_writing(self) -> None:
        # A client that sends without reading must not grow our buffers forever.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        # Headers and body are reset once used (on_message_complete), not here: most
        # requests have neither, and every attribute store counts on this path.
        self._in_message = True
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL_BYTES:
            self._error = URI_TOO_LONG
            raise _TooLargeError

    def on_header(self, name: bytes, value: bytes) -> None:
        # Only two headers matter; the length test skips lower() for all the others.
        if len(name) == 12 and name.lower() == b"content-type":
            self._content_type = value
        elif len(name) == 6 and name.lower() == b"expect":
            self._expect_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        if self._expect_continue:
            self._expect_continue = False
            if not self._pending and self._transport is not None:
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
        answer = self._router.dispatch(Request(method, path, query, content_type, body))
        keep_alive = self._keep_alive
        if not keep_alive:
            self._last_request_seen = True  # requests pipelined behind it are dropped
        head_only = method == b"HEAD"
        method_index = METHOD_INDEX.get(method, OTHER_METHOD)
        if isinstance(answer, Response):
            if not self._pending:
                self._write(answer, keep_alive, head_only, method_index)
                return
            ready: _Answer = answer
        else:
            ready = task = asyncio.get_running_loop().create_task(answer)
            task.add_done_callback(self._on_ready)
        self._pending.append((ready, keep_alive, head_only, method_index))
        self._update_reading()

    # -- answers ----------------------------------------------------------------------

    def _write(self, response: Response, keep_alive: bool, head_only: bool, method: int) -> None:
        if response.counted:
            self._counts[method * _CLASSES + response.status // 100 - 1] += 1
        # A HEAD answer announces the body's length but must not carry the body.
        tail = KEEP_ALIVE_TAIL if keep_alive else CLOSE_TAIL
        self._send(response.head + tail if head_only else response.head + tail + response.body)
        if not keep_alive:
            self.close()

    def _on_ready(self, task: asyncio.Task[Response]) -> None:
        if not self._closed:
            self._flush()
        elif not task.cancelled() and task.exception() is not None:
            logger.error("handler failed", exc_info=task.exception())

    def _flush(self) -> None:
        """Write every answer at the head of the queue that is ready, in order."""
        pending = self._pending
        while pending and not self._closed:
            answer, keep_alive, head_only, method = pending[0]
            if not isinstance(answer, Response):
                if not answer.done():
                    break
                answer = _task_response(answer)
            pending.popleft()
            if not pending and self._connections.draining:
                keep_alive = False  # shutting down: this answer is the connection's last
            self._write(answer, keep_alive, head_only, method)
        if not self._closed:
            self._update_reading()
            if not pending and (self._last_request_seen or self._connections.draining):
                self.close()

    def _answer_last(self, response: Response | None) -> None:
        """Answer (or not) and close once everything before is answered."""
        self._last_request_seen = True
        if response is not None:
            self._pending.append((response, False, False, OTHER_METHOD))
        self._flush()

    def _update_reading(self) -> None:
        pause = self._write_paused or len(self._pending) >= MAX_PENDING
        if pause != self._read_paused and self._transport is not None and not self._closed:
            self._read_paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.close()


def _task_response(task: asyncio.Task[Response]) -> Response:
    try:
        return task.result()
    except (Exception, asyncio.CancelledError):
        logger.exception("handler failed")
        return INTERNAL_ERROR
