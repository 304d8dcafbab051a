"""The open connections of one server: the cap on them, their timeouts, and the drain.

Timeouts cost the hot path one integer add per request: a connection counts the requests it
begins (and the writes it resumes), and one sweep per server, every ``ServerLimits.tick_s``,
closes those whose count has not moved for too long in a state that must not last: a request
head (or body) still arriving after ``header_timeout_s`` (slowloris; a new connection that
sends nothing too), nothing to do after ``idle_timeout_s``, or a client that has read none of
its answers for as long. One timer per server costs less than one per connection, re-armed
at every request, and a timeout is met to within a tick.

At the cap, a new connection takes the place of the oldest idle one (a keep-alive connection
between requests may be closed at any time; its client opens another), as nginx reuses its
connections; when every connection is busy, the newcomer is answered 503 and closed. The
listener goes on accepting either way, so a flood of connections never waits in the kernel's
backlog, and the process keeps its descriptors below the limit for its other servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from typing import Protocol

from latlab.serving.limits import ServerLimits


class Connection(Protocol):
    """What the connections of a server are to this module (``protocol.HttpProtocol``)."""

    @property
    def idle(self) -> bool: ...

    def on_tick(self, header_ticks: int, idle_ticks: int) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


# At the cap, how many of the oldest connections are looked at for an idle one; the busy
# ones go to the back, so the next look sees others.
EVICTION_SCAN = 64


class Connections:
    """The open connections of one server: they add and discard themselves, and ``drain``
    ends them all at shutdown, busy ones last."""

    def __init__(self, limits: ServerLimits | None = None) -> None:
        limits = limits or ServerLimits()
        self._open: dict[Connection, None] = {}  # oldest first
        self._max = limits.max_connections
        self._tick_s = limits.tick_s
        self.header_ticks = math.ceil(limits.header_timeout_s / self._tick_s)
        self.idle_ticks = math.ceil(limits.idle_timeout_s / self._tick_s)
        self._sweeper: asyncio.TimerHandle | None = None
        self._all_closed: asyncio.Event | None = None
        self.draining = False

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: Connection) -> bool:
        """Room for ``connection``? At the cap an idle one makes room, if there is one."""
        if self._max is not None and len(self._open) >= self._max and not self._evict_idle():
            return False
        self._open[connection] = None
        if self._sweeper is None and not self.draining:
            self._sweeper = asyncio.get_running_loop().call_later(self._tick_s, self._sweep)
        return True

    def discard(self, connection: Connection) -> None:
        self._open.pop(connection, None)
        if not self._open and self._all_closed is not None:
            self._all_closed.set()

    def _evict_idle(self) -> bool:
        for connection in list(itertools.islice(self._open, EVICTION_SCAN)):
            if connection.idle:
                self.discard(connection)
                connection.close()
                return True
            del self._open[connection]
            self._open[connection] = None
        return False

    def _sweep(self) -> None:
        for connection in list(self._open):
            connection.on_tick(self.header_ticks, self.idle_ticks)
        if self._open and not self.draining:
            self._sweeper = asyncio.get_running_loop().call_later(self._tick_s, self._sweep)
        else:
            self._sweeper = None

    async def drain(self, grace_s: float) -> None:
        """Close idle connections now, busy ones once answered or after ``grace_s``."""
        self.draining = True  # a busy connection closes itself after its last answer
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._all_closed = asyncio.Event()
        for connection in list(self._open):
            if connection.idle:
                connection.close()
        if self._open:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace_s)
        for connection in list(self._open):
            connection.abort()  # a client that reads nothing would keep a close() waiting
        if self._open:  # let the transports report the loss before the loop moves on
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), 1.0)
