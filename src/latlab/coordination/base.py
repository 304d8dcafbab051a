"""The coordination port: ownership of running bots and the shared set of active ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

# Running bots with their owner fleet, read from the store on demand.
RunningBots = Callable[[], Awaitable[dict[int, str]]]


class Coordinator(Protocol):
    fleet_id: str
    lease_s: float

    async def adopt(self, running: RunningBots) -> list[int]:
        """Running bots that this fleet should run now: its own at start-up and orphans."""
        ...

    async def orphans_exist(self) -> bool:
        """Whether a fleet died since the last look (then ``adopt`` is worth a store scan)."""
        ...

    async def joined(self, bot_ids: Collection[int]) -> None:
        """These bots run here from now on."""
        ...

    async def left(self, bot_id: int) -> None:
        """The bot stopped (wherever it ran); tell its fleet."""
        ...

    async def active_ids(self) -> list[int] | None:
        """Active bot ids newest first, or None when the store is the only view."""
        ...

    async def next_stop(self) -> int | None:
        """The id of the next bot stopped by another process; None once closed."""
        ...

    async def keep_alive(self) -> None:
        """Called about every ``lease_s / 3``: renew this fleet's claim."""
        ...

    async def close(self) -> None: ...
