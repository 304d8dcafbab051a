"""Several API processes on one store, coordinated through Redis.

Each process is a fleet with a lease key that expires unless renewed. A running bot belongs to
the fleet named in its checkpoint; when that fleet's lease is gone, the first live fleet to set
the ``taken`` marker adopts its bots (so two never run one bot). The active set is a sorted set
every process reads, and stops are announced on a channel so the owner stops printing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Collection
from typing import Self

import redis.asyncio as redis

from latlab.coordination.base import RunningBots


class RedisCoordinator:
    lease_s = 3.0

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.fleet_id = uuid.uuid4().hex[:12]
        self._redis = client
        self._prefix = prefix
        self._stops: asyncio.Queue[int | None] = asyncio.Queue()
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, prefix: str) -> Self:
        client = redis.Redis.from_url(url, decode_responses=True)
        coordinator = cls(client, prefix)
        try:
            await coordinator._start()
        except BaseException:
            await client.aclose()
            raise
        return coordinator

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def _start(self) -> None:
        await self.keep_alive()
        await self._redis.sadd(self._key("fleets"), self.fleet_id)
        await self._pubsub.subscribe(self._key("bots", "stopped"))
        self._listener = asyncio.create_task(self._listen(), name="latlab-bot-stops")

    async def _listen(self) -> None:
        async for message in self._pubsub.listen():
            self._stops.put_nowait(int(message["data"]))

    async def adopt(self, running: RunningBots) -> list[int]:
        """Bots whose fleet is gone, if this fleet wins the race to take them over.

        Never this fleet's own: those already run here (its id is new at every start).
        """
        owners = await running()
        mine: list[int] = []
        for fleet in sorted(set(owners.values()) - {self.fleet_id}):
            if await self._take_over(fleet):
                mine += [bot_id for bot_id, owner in owners.items() if owner == fleet]
        return sorted(mine)

    async def orphans_exist(self) -> bool:
        """Cheap check before a store scan: is any registered fleet's lease gone?"""
        fleets = sorted(str(fleet) for fleet in await self._redis.smembers(self._key("fleets")))
        async with self._redis.pipeline(transaction=False) as pipe:
            for fleet in fleets:
                pipe.exists(self._key("fleet", fleet))
            alive = await pipe.execute()
        return not all(alive)

    async def _take_over(self, fleet: str) -> bool:
        if await self._redis.exists(self._key("fleet", fleet)):
            return False
        # The marker only has to outlive the adoption: afterwards the bots name their new fleet.
        won = await self._redis.set(self._key("taken", fleet), self.fleet_id, nx=True, ex=60)
        if won:
            await self._redis.srem(self._key("fleets"), fleet)
        return bool(won)

    async def joined(self, bot_ids: Collection[int]) -> None:
        if bot_ids:
            await self._redis.zadd(self._key("bots", "active"), {str(i): i for i in bot_ids})

    async def left(self, bot_id: int) -> None:
        await self._redis.zrem(self._key("bots", "active"), str(bot_id))
        await self._redis.publish(self._key("bots", "stopped"), str(bot_id))

    async def active_ids(self) -> list[int] | None:
        ids = await self._redis.zrevrange(self._key("bots", "active"), 0, -1)
        return [int(str(bot_id)) for bot_id in ids]

    async def next_stop(self) -> int | None:
        return await self._stops.get()

    async def keep_alive(self) -> None:
        await self._redis.set(self._key("fleet", self.fleet_id), "1", px=int(self.lease_s * 1000))

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self._stops.put_nowait(None)
        # Leaving at once lets a live (or restarted) process adopt our bots without waiting.
        await self._redis.delete(self._key("fleet", self.fleet_id))
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()
