"""A connection's answers: queued in request order, written as the transport takes them.

``HttpProtocol`` (``protocol.py``) parses requests; this half dispatches them and writes the
answers. An answer the handler gives at once is written at once when nothing waits before
it: the hot path. Otherwise the request waits in ``_deferred`` (parsed, not dispatched)
until fewer than ``max_pending`` answers wait, none of them ready to write, and the
transport is not paused; answers that must wait run as tasks (or are futures set
elsewhere) meanwhile. A body larger than
``DIRECT_BODY_BYTES`` leaves in chunks, the next only once the transport has room, so a
client that reads nothing holds one answer's body (shared, not copied) and what the kernel
buffers. While anything waits, the connection is not read further.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from latlab.serving.connections import Connections
from latlab.serving.counting import OTHER_METHOD, STATUS_CLASSES
from latlab.serving.limits import ServerLimits
from latlab.serving.routes import Router
from latlab.serving.wire import CLOSE_TAIL, INTERNAL_ERROR, KEEP_ALIVE_TAIL, Request, Response

logger = logging.getLogger(__name__)

# Bodies up to this size leave with their head in one write; larger ones in chunks.
DIRECT_BODY_BYTES = 64 * 1024
BODY_CHUNK_BYTES = 256 * 1024

_CLASSES = len(STATUS_CLASSES)
_Answer = Response | asyncio.Future[Response]
_Pending = tuple[_Answer, bool, bool, int]  # answer, keep-alive, HEAD, method index
_Deferred = tuple[Request | Response, bool, bool, int]  # not dispatched yet (or an error)


class Answers(asyncio.Protocol):
    """The answering half of a connection (``HttpProtocol`` is the whole)."""

    # Slots: a connection has more attributes than an instance dict keeps fast (30 shared keys
    # in CPython 3.11), and every one is read on the hot path.
    __slots__ = (
        "_body_left",
        "_close_after_body",
        "_closed",
        "_connections",
        "_counts",
        "_deferred",
        "_last_request_seen",
        "_max_pending",
        "_pending",
        "_progress",
        "_read_paused",
        "_router",
        "_send",
        "_transport",
        "_write_paused",
    )
    _send: Callable[[bytes | memoryview], object]  # the transport's write, once connected

    def __init__(
        self, router: Router, connections: Connections, counts: list[int], limits: ServerLimits
    ) -> None:
        self._router = router
        self._connections = connections
        self._counts = counts
        self._max_pending = limits.max_pending
        self._transport: asyncio.Transport | None = None
        self._pending: deque[_Pending] = deque()
        self._deferred: deque[_Deferred] = deque()
        self._body_left: memoryview | None = None  # of the answer being written
        self._close_after_body = False
        self._last_request_seen = False  # Connection: close or an error: read no further
        self._closed = False
        self._write_paused = False
        self._read_paused = False
        self._progress = 0  # requests begun and writes resumed: what the sweep watches

    def pause_writing(self) -> None:
        # A client that sends without reading must not grow our buffers forever.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._progress += 1
        self._flush()

    def _write(self, response: Response, keep_alive: bool, head_only: bool, method: int) -> None:
        if response.counted:
            self._counts[method * _CLASSES + response.status // 100 - 1] += 1
        # A HEAD answer announces the body's length but must not carry the body.
        tail = KEEP_ALIVE_TAIL if keep_alive else CLOSE_TAIL
        body = response.body
        if head_only:
            self._send(response.head + tail)
        elif len(body) <= DIRECT_BODY_BYTES:
            self._send(response.head + tail + body)
        else:  # shared, not copied; it leaves as fast as the client reads
            self._send(response.head + tail)
            self._body_left, self._close_after_body = memoryview(body), not keep_alive
            self._write_body()
            return
        if not keep_alive:
            self.close()

    def _write_body(self) -> None:
        left = self._body_left
        assert left is not None
        while left and not self._write_paused and not self._closed:
            self._send(left[:BODY_CHUNK_BYTES])
            left = left[BODY_CHUNK_BYTES:]
        if left and not self._closed:
            self._body_left = left  # resume_writing goes on with it
            return
        self._body_left = None
        if self._close_after_body:
            self.close()

    def _start(
        self, answer: Coroutine[Any, Any, Response] | asyncio.Future[Response]
    ) -> asyncio.Future[Response]:
        if not isinstance(answer, asyncio.Future):
            answer = asyncio.get_running_loop().create_task(answer)
        answer.add_done_callback(self._on_ready)
        return answer

    def _on_ready(self, task: asyncio.Future[Response]) -> None:
        if not self._closed:
            self._flush()
        elif not task.cancelled() and task.exception() is not None:
            logger.error("handler failed", exc_info=task.exception())

    def _dispatch_deferred(self) -> None:
        """Dispatch requests received earlier while fewer than ``max_pending`` answers wait
        and none of them is ready to write (a ready answer is written before the next)."""
        deferred, pending = self._deferred, self._pending
        while deferred and len(pending) < self._max_pending:
            if pending and isinstance(pending[-1][0], Response):
                return
            request, keep_alive, head_only, method = deferred.popleft()
            if isinstance(request, Request):
                answer = self._router.dispatch(request)
                ready = answer if isinstance(answer, Response) else self._start(answer)
            else:
                ready = request  # an error answered in its turn
            pending.append((ready, keep_alive, head_only, method))

    def _flush(self) -> None:
        """Write the answers at the head of the queue that are ready, in order, while the
        transport takes them; dispatch waiting requests as room frees."""
        pending = self._pending
        while not self._closed and not self._write_paused:
            if self._body_left is not None:
                self._write_body()
                continue
            self._dispatch_deferred()
            if not pending:
                break
            answer, keep_alive, head_only, method = pending[0]
            if not isinstance(answer, Response):
                if not answer.done():
                    break
                answer = _task_response(answer)
            pending.popleft()
            if not pending and not self._deferred and self._connections.draining:
                keep_alive = False  # shutting down: this answer is the connection's last
            self._write(answer, keep_alive, head_only, method)
        if not self._closed:
            self._update_reading()
            done = not (pending or self._deferred or self._body_left)
            if done and (self._last_request_seen or self._connections.draining):
                self.close()

    def _answer_last(self, response: Response | None) -> None:
        """Answer (or not) and close once everything before is answered."""
        self._last_request_seen = True
        if response is not None:
            self._deferred.append((response, False, False, OTHER_METHOD))
        self._flush()

    def _update_reading(self) -> None:
        pause = (
            self._write_paused or bool(self._deferred) or len(self._pending) >= self._max_pending
        )
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

    def abort(self) -> None:
        """Close without flushing what the client has not read."""
        if self._transport is not None and not self._closed:
            self._closed = True
            self._transport.abort()


def _task_response(task: asyncio.Future[Response]) -> Response:
    try:
        return task.result()
    except (Exception, asyncio.CancelledError):
        logger.exception("handler failed")
        return INTERNAL_ERROR
