"""An HTTP/1.1 target whose answer to each request is scripted, for the load engine's tests.

``script(n)`` is called for the ``n``-th request (from 1) and says how to answer it:
a :class:`Answer` (delay, status, whether to close after it) or None to close the
connection without answering. The target keeps the time each request arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter

from harness import bound_port


@dataclass(frozen=True)
class Answer:
    delay_s: float = 0.0
    status: int = 200
    close: bool = False


OK = Answer()
Script = Callable[[int], Answer | None]


@dataclass
class ScriptedTarget:
    script: Script = field(default=lambda _n: OK)
    arrivals_s: list[float] = field(default_factory=list)  # perf_counter time of each request
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return len(self.arrivals_s)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                if length:
                    await reader.readexactly(length)
                self.arrivals_s.append(perf_counter())
                answer = self.script(len(self.arrivals_s))
                if answer is None:
                    break
                if answer.delay_s:
                    await asyncio.sleep(answer.delay_s)
                writer.write(_response(answer, head.startswith(b"HEAD ")))
                await writer.drain()
                if answer.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def __aenter__(self) -> ScriptedTarget:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = bound_port(self._server)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in list(self._handlers):
            handler.cancel()  # a client may still hold a connection open
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _response(answer: Answer, head_only: bool) -> bytes:
    connection = b"close" if answer.close else b"keep-alive"
    head = b"HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: %s\r\n\r\n" % (
        answer.status,
        connection,
    )
    return head if head_only else head + b"ok"
