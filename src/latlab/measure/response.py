"""The response side of a probe: httptools fed chunk by chunk, the body never kept.

A :class:`Response` knows when the answer is complete (framed by length or chunks, or by
the end of the connection, or at the headers of a HEAD answer) and whether the connection
may be kept; a :class:`ScanningResponse` also looks for a text in the body as it passes.
"""

from __future__ import annotations

from time import perf_counter

import httptools


class ProbeError(Exception):
    """A protocol-level failure; the message is what the Exchange reports."""


class Response:
    """httptools sink for one response; bodies are counted by the parser, never kept.

    ``headers_only``: the answer to a HEAD, whose headers frame a body that never comes.
    """

    def __init__(self, *, headers_only: bool = False) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers_only = headers_only
        self._ended_at_headers = False
        self._headers_done = False
        self._framed = False
        self.complete = False
        self.keep_alive = False
        self.status_code = 0
        self.done_s = 0.0

    @property
    def body_found(self) -> bool:
        return False  # no body check: nothing to find

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if not self.complete:
                raise ProbeError(f"invalid HTTP response: {exc}") from exc
            self.keep_alive = False  # bytes after the response: the connection is out of step

    def feed_eof(self, *, any_bytes: bool) -> None:
        if not any_bytes:
            raise ProbeError("server closed connection without response")
        if not self._headers_done or self._framed:
            raise ProbeError("connection closed before response complete")
        # No Content-Length nor chunking: the body ends where the connection does.
        self._complete()

    def on_header(self, name: bytes, _value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._headers_only and self._parser.get_status_code() >= 200:
            self._ended_at_headers = True
            self._complete()

    def on_message_complete(self) -> None:
        if self._ended_at_headers:
            self._ended_at_headers = False  # the end the parser sees of the HEAD answer
        elif self.complete:
            self.keep_alive = False  # a second response nobody asked for
        elif 100 <= self._parser.get_status_code() < 200:
            # Interim response (e.g. 100 Continue): the final one follows.
            self._headers_done = self._framed = False
        else:
            self._complete()

    def _complete(self) -> None:
        self.done_s = perf_counter()
        self.complete = True
        self.status_code = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()


class BodyScan:
    """Looks for ``needle`` in a body given chunk by chunk. Between chunks it keeps only the
    last ``len(needle) - 1`` bytes, where a match across the boundary would begin."""

    __slots__ = ("_carry", "_keep", "_needle", "found")

    def __init__(self, needle: bytes) -> None:
        self._needle = needle
        self._keep = len(needle) - 1
        self._carry = b""
        self.found = False

    def feed(self, chunk: bytes) -> None:
        if self.found:
            return
        keep = self._keep
        if self._needle in chunk or self._needle in self._carry + chunk[:keep]:
            self.found = True
            self._carry = b""
        elif keep:
            self._carry = chunk[-keep:] if len(chunk) >= keep else (self._carry + chunk)[-keep:]


class ScanningResponse(Response):
    """A response whose body is searched as it arrives (httptools calls ``on_body`` only on
    a sink that has one, so responses without a body check pay nothing for it)."""

    def __init__(self, needle: bytes) -> None:
        super().__init__()
        self._scan = BodyScan(needle)

    @property
    def body_found(self) -> bool:
        return self._scan.found

    def on_body(self, chunk: bytes) -> None:
        self._scan.feed(chunk)
