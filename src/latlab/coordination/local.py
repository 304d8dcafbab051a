"""One process owns every job: the store is the whole truth, nothing is shared."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

from latlab.coordination.base import JobKey, RunningJobs


class LocalCoordinator:
    """Adopts every running job once, at start-up. Run one API process per store with it."""

    lease_s = 3.0
    shared = False

    def __init__(self) -> None:
        # New at every start, so the heartbeat a restarted process reads is its predecessor's.
        self.owner_id = f"local-{uuid.uuid4().hex[:8]}"
        self._adopted = False
        self._closed = asyncio.Event()
        # Every running job is this process's: the active set is known here, no store scan.
        self._active: dict[str, set[int]] = {}

    async def adopt(self, running: RunningJobs) -> list[JobKey]:
        if self._adopted:
            return []
        owners = await running()  # may raise (store away): then the next try adopts
        self._adopted = True
        return sorted(owners)

    async def orphans_exist(self) -> bool:
        return False

    async def alive(self, owner: str) -> bool:
        return owner == self.owner_id

    async def joined(self, keys: Collection[JobKey]) -> None:
        for kind, job_id in keys:
            self._active.setdefault(kind, set()).add(job_id)

    async def left(self, key: JobKey) -> None:
        self._active.get(key[0], set()).discard(key[1])

    async def active_ids(self, kind: str) -> list[int] | None:
        return sorted(self._active.get(kind, ()), reverse=True)

    async def listen(self) -> None:
        await self._closed.wait()

    async def next_halt(self) -> JobKey | None:
        # No other process can halt our jobs: nothing ever arrives before close.
        await self._closed.wait()
        return None

    async def keep_alive(self) -> None:
        return None

    def lease_fresh(self) -> bool:
        return True

    def renew_identity(self) -> str:
        return self.owner_id

    async def close(self) -> None:
        self._closed.set()
