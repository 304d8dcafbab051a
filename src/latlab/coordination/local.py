"""One process owns every bot: the store is the whole truth, nothing is shared."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from latlab.coordination.base import RunningBots


class LocalCoordinator:
    """Adopts every running bot once, at start-up. Run one API process per store with it."""

    fleet_id = "local"
    lease_s = 3.0

    def __init__(self) -> None:
        self._adopted = False
        self._closed = asyncio.Event()

    async def adopt(self, running: RunningBots) -> list[int]:
        if self._adopted:
            return []
        self._adopted = True
        return sorted(await running())

    async def orphans_exist(self) -> bool:
        return False

    async def joined(self, bot_ids: Collection[int]) -> None:
        return None

    async def left(self, bot_id: int) -> None:
        return None

    async def active_ids(self) -> list[int] | None:
        return None

    async def next_stop(self) -> int | None:
        # No other process can stop our bots: nothing ever arrives before close.
        await self._closed.wait()
        return None

    async def keep_alive(self) -> None:
        return None

    async def close(self) -> None:
        self._closed.set()
