"""A router behind a listener: what a service needs to serve HTTP/1.1 on a port.

server = HttpServer(Router({b"/ping": route(ping)}))
await server.listen("127.0.0.1", 0)
...
await server.close()  # stop accepting, finish answers in flight, close connections
"""

from __future__ import annotations

import asyncio

from latlab.serving.connections import Connections
from latlab.serving.counting import REQUEST_CELLS, request_counts
from latlab.serving.limits import ServerLimits
from latlab.serving.protocol import HeaderKeepingProtocol, HttpProtocol
from latlab.serving.routes import Router

# How long a shutdown waits for answers in flight before it cuts them.
GRACE_S = 5.0


class HttpServer:
    """Serves ``router``; counts answers into ``counts`` (``counting.py``'s layout first);
    holds its clients to ``limits``; ``keep_headers`` hands every header to the handlers."""

    def __init__(
        self,
        router: Router,
        counts: list[int] | None = None,
        *,
        limits: ServerLimits | None = None,
        keep_headers: bool = False,
    ) -> None:
        self.counts = request_counts() if counts is None else counts
        if len(self.counts) < REQUEST_CELLS:
            raise ValueError(f"{len(self.counts)} counts; requests need {REQUEST_CELLS}")
        self.limits = limits or ServerLimits()
        self.connections = Connections(self.limits)
        self._router = router
        self._protocol = HeaderKeepingProtocol if keep_headers else HttpProtocol
        self._server: asyncio.Server | None = None

    def _connection(self) -> HttpProtocol:
        return self._protocol(self._router, self.connections, self.counts, self.limits)

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> asyncio.Server:
        """Start accepting on host:port (0 picks a free port). ``reuse_port`` lets several
        processes listen on one port (``workers.py``)."""
        self._server = await asyncio.get_running_loop().create_server(
            self._connection, host=host, port=port, reuse_address=True, reuse_port=reuse_port
        )
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None, "listen() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace_s: float = GRACE_S) -> None:
        """Stop accepting, let answers in flight finish (up to ``grace_s``), close all."""
        if self._server is not None:
            self._server.close()
        await self.connections.drain(grace_s)
        if self._server is not None:
            await self._server.wait_closed()
