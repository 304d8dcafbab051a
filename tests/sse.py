"""Clients of LatLab's live feeds for tests: an SSE reader, and a client that stops reading."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness import wait_for


@dataclass
class Frame:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


class Stream:
    """The frames of one SSE response, parsed as a browser would."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def frame(self) -> Frame | None:
        """The next frame (comments included), or None once the server ended the stream."""
        frame, seen = Frame(), False
        async for line in self._lines:
            if not line:
                if seen:
                    return frame
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if not name:
                frame.comments.append(value)
            elif name == "data":
                frame.data = f"{frame.data}\n{value}" if frame.data else value
            elif name in ("event", "id"):
                setattr(frame, name, value)
        return None

    async def until(self, done: Callable[[list[Frame]], bool] = lambda _: False) -> list[Frame]:
        """Events (no comments) until ``done`` says so or the stream ends."""
        events: list[Frame] = []
        async with asyncio.timeout(20):
            while not done(events) and (frame := await self.frame()) is not None:
                if frame.data:
                    events.append(frame)
        return events


@asynccontextmanager
async def subscribed(api: httpx.AsyncClient, path: str, **kwargs: Any) -> AsyncIterator[Stream]:
    """An open feed, once it is subscribed (its first frame says so)."""
    async with api.stream("GET", path, **kwargs) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        first = await stream.frame()
        assert first is not None
        assert first.comments == ["subscribed"]
        yield stream


async def rest(api: httpx.AsyncClient, path: str, **kwargs: Any) -> list[Frame]:
    """Every event of a feed, to its end."""
    async with subscribed(api, path, **kwargs) as stream:
        return await stream.until()


async def clients(api: httpx.AsyncClient) -> int:
    """Live feeds open now, as ``/metrics`` counts them."""
    page = (await api.get("/metrics")).text
    families = text_string_to_metric_families(page)
    gauge = next(family for family in families if family.name == "latlab_live_clients")
    return int(gauge.samples[0].value)


@asynccontextmanager
async def stalled_client(api: httpx.AsyncClient, path: str) -> AsyncIterator[socket.socket]:
    """A client that sends its request and reads nothing, until the test reads for it.

    Its tiny window and segments make the server's buffers fill after ~120 KB (~400
    events) rather than the megabytes loopback allows otherwise.
    """
    loop, before = asyncio.get_running_loop(), await clients(api)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 88)  # and TCP's
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", api.base_url.port or 80))
        await loop.sock_sendall(sock, request.encode())

        async def subscribed() -> bool:
            return await clients(api) > before

        await wait_for(subscribed, what="the stalled client to subscribe")
        yield sock


async def read_to_end(sock: socket.socket) -> bytes:
    """What the server sent, read at last; a wider window first, or 88-byte segments crawl."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    loop, chunks = asyncio.get_running_loop(), []
    async with asyncio.timeout(20):
        while chunk := await loop.sock_recv(sock, 65536):
            chunks.append(chunk)
    return b"".join(chunks)
