"""A target in the benchmark's own process that counts the HTTP requests it reads and keeps
when the last one came: what a run's client sent, seen from the other side."""

from __future__ import annotations

import asyncio
import itertools
import time
from types import TracebackType

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
FLOWING_S = 0.5  # how long requests flow before a control is timed


class CountingServer:
    def __init__(self) -> None:
        self.requests = 0
        self.arrivals: list[float] = []  # perf_counter() of each request read
        self._last_s = 0.0
        self._arrived = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                self._last_s = time.perf_counter()
                self.arrivals.append(self._last_s)
                self._arrived.set()
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def last_arrival_s(self) -> float:
        return self._last_s

    def first_arrival_after(self, moment_s: float) -> float | None:
        return next((s for s in self.arrivals if s > moment_s), None)

    def slowed_after(self, moment_s: float, gap_s: float) -> float | None:
        """When the last request of the old pace came: the first one after ``moment_s``
        that no other followed within ``gap_s`` (a rate lowered took effect)."""
        later = [s for s in self.arrivals if s > moment_s]
        return next((a for a, b in itertools.pairwise(later) if b - a >= gap_s), None)

    async def flowing(self) -> None:
        """Once requests arrive again (after a resume, or at the start), and then for
        ``FLOWING_S``: the run is sending steadily."""
        self._arrived.clear()
        await self._arrived.wait()
        await asyncio.sleep(FLOWING_S)

    async def __aenter__(self) -> CountingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
