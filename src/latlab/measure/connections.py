"""Connections for the probe: a raw non-blocking socket for HTTP, asyncio streams for HTTPS."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl

RECV_BYTES = 65536


class SocketConnection:
    """Plain TCP: try each syscall first and wait on the loop only if it would block."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._readable: asyncio.Future[None] | None = None
        self._watching = False

    @classmethod
    async def open(cls, family: int, address: str, port: int) -> SocketConnection:
        conn = cls(socket.socket(family, socket.SOCK_STREAM))
        try:
            conn._sock.setblocking(False)
            conn._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            error = conn._sock.connect_ex((address, port))
            if error == errno.EINPROGRESS:
                await conn._wait_writable()
                error = conn._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))
        except BaseException:
            conn.close()
            raise
        return conn

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                await self._wait_writable()

    async def recv(self) -> bytes:
        while True:
            try:
                return self._sock.recv(RECV_BYTES)
            except BlockingIOError:
                await self._wait_readable()

    def close(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False
        self._sock.close()

    async def _wait_writable(self) -> None:
        ready = self._loop.create_future()
        self._loop.add_writer(self._fd, _wake, ready)
        try:
            await ready
        finally:
            self._loop.remove_writer(self._fd)

    async def _wait_readable(self) -> None:
        self._readable = self._loop.create_future()
        if not self._watching:
            # Left registered after the wait, so that the next response on a kept-alive
            # connection is caught without registering the socket again.
            self._loop.add_reader(self._fd, self._on_readable)
            self._watching = True
        await self._readable

    def _on_readable(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)
            return
        # Nobody is waiting (say the server closed an idle connection): stop watching
        # instead of being woken on every loop turn.
        self._loop.remove_reader(self._fd)
        self._watching = False


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class TlsConnection:
    """HTTPS on asyncio streams: the handshake dwarfs their overhead."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(
        cls, family: int, address: str, port: int, context: ssl.SSLContext, hostname: str
    ) -> TlsConnection:
        reader, writer = await asyncio.open_connection(
            address, port, family=family, ssl=context, server_hostname=hostname
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def recv(self) -> bytes:
        return await self._reader.read(RECV_BYTES)

    def close(self) -> None:
        # Abort: a probe must not wait on the peer's TLS close_notify.
        self._writer.transport.abort()


Connection = SocketConnection | TlsConnection
