"""Built-in target server: HTTP/1.1 on a raw asyncio protocol with httptools.

This is the hot path of latency measurements, so per-request work is kept to
parsing the request line, one dict lookup and one transport write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import cast

import httptools

from latlab.targets.routes import BAD_REQUEST, ROUTES, Route, dispatch

# Longer request targets are refused rather than buffered without bound.
MAX_URL_BYTES = 8192


class _RequestTooLargeError(Exception):
    pass


class TargetProtocol(asyncio.Protocol):
    """One client connection. Handlers are synchronous, so pipelined responses stay in order."""

    def __init__(self, routes: Mapping[bytes, Route], connections: set[TargetProtocol]) -> None:
        self._routes = routes
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._keep_alive = True
        self._in_message = False
        self._closing = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Protocol switching is not offered; a half-read request gets a 400.
            if self._in_message:
                self._finish_with_error()
            else:
                self.close()
        except httptools.HttpParserError:
            self._finish_with_error()

    def pause_writing(self) -> None:
        # A client that pipelines without reading must not grow our buffers forever.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL_BYTES:
            raise _RequestTooLargeError

    def on_headers_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self._in_message = False
        # Requests pipelined behind one that closes the connection are dropped.
        if self._closing or self._transport is None:
            return
        method = self._parser.get_method()
        response = dispatch(self._routes, method, self._url)
        self._transport.write(
            response.wire(keep_alive=self._keep_alive, head_only=method == b"HEAD")
        )
        if not self._keep_alive:
            self.close()

    # -- helpers ----------------------------------------------------------------------

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _finish_with_error(self) -> None:
        if self._transport is not None and not self._closing:
            self._transport.write(BAD_REQUEST.close)
        self.close()


async def _start(host: str, port: int) -> tuple[asyncio.Server, set[TargetProtocol]]:
    loop = asyncio.get_running_loop()
    connections: set[TargetProtocol] = set()
    server = await loop.create_server(
        lambda: TargetProtocol(ROUTES, connections), host=host, port=port, reuse_address=True
    )
    return server, connections


async def start_targets(host: str, port: int) -> asyncio.Server:
    """Start listening on host:port (0 picks a free port) and return the server."""
    server, _ = await _start(host, port)
    return server


async def serve_targets(host: str, port: int) -> None:
    """Serve until cancelled; open client connections are closed on the way out."""
    server, connections = await _start(host, port)
    try:
        await server.serve_forever()
    finally:
        server.close()
        for connection in list(connections):
            connection.close()
        await server.wait_closed()
