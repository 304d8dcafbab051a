"""Several API processes on one store, coordinated through Redis.

Each process is an owner with a lease key that expires unless renewed. A running job belongs
to the owner named in its checkpoint; when that owner's lease is gone, the first live process
to set the ``taken`` marker adopts its jobs (so two never run one job). Active jobs are sorted
sets every process reads, and halts (stop, pause, delete) are announced on a channel so the
owner halts its work. The listener reconnects after an outage and then asks for one
resynchronisation with the store, since announcements sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Collection
from typing import Self

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from latlab.cancellation import deliver_lost_cancel
from latlab.coordination.base import JobKey, RunningJobs

log = logging.getLogger("latlab.coordination")
# Sentinel from next_halt(): announcements may have been missed, compare with the store.
RESYNC: JobKey = ("", 0)


def open_client(url: str, timeout_s: float) -> redis.Redis:
    """The one way LatLab opens Redis: text replies, no call waits longer than ``timeout_s``,
    and a command that meets a connection broken by an outage is retried on a fresh one
    (a pooled connection does not know the server restarted until it is used)."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=timeout_s / 2, base=0.05), 2),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=timeout_s,
    )


def job_member(key: JobKey) -> str:
    return f"{key[0]}:{key[1]}"


def parse_member(member: str) -> JobKey:
    kind, _, job_id = member.rpartition(":")
    return kind, int(job_id)


class RedisCoordinator:
    lease_s = 3.0
    shared = True

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.owner_id = uuid.uuid4().hex[:12]
        self._redis = client
        self._prefix = prefix
        self._halts: asyncio.Queue[JobKey | None] = asyncio.Queue()
        self._renewed_s = -float("inf")
        self._closed = False

    @classmethod
    async def open(cls, url: str, prefix: str) -> Self:
        client = open_client(url, cls.lease_s / 3)
        coordinator = cls(client, prefix)
        try:
            await coordinator.keep_alive()
        except BaseException:
            await client.aclose()
            raise
        return coordinator

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def listen(self) -> None:
        """Feed ``next_halt`` until the connection fails (the caller supervises and restarts)."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._key("jobs", "halted"))
            self._halts.put_nowait(RESYNC)  # anything announced before we listened is missed
            while not self._closed:
                deliver_lost_cancel()  # the last read may have swallowed a stop (gh-86296)
                message = await pubsub.get_message(timeout=self.lease_s / 3)
                if message is not None:
                    self._halts.put_nowait(parse_member(str(message["data"])))
        finally:
            await pubsub.aclose()

    async def adopt(self, running: RunningJobs) -> list[JobKey]:
        """Jobs whose owner is gone, if this process wins the race to take them over.

        Never this owner's own: those already run here (its id is new at every start).
        """
        owners = await running()
        mine: list[JobKey] = []
        for owner in sorted(set(owners.values()) - {self.owner_id}):
            if await self._take_over(owner):
                mine += [key for key, of in owners.items() if of == owner]
        await self._forget_idle_owners(set(owners.values()))
        return sorted(mine)

    async def _forget_idle_owners(self, owning: set[str]) -> None:
        """Registered owners with neither a lease nor a running job: nothing to adopt, ever."""
        registered = {str(owner) for owner in await self._redis.smembers(self._key("fleets"))}
        for owner in sorted(registered - owning - {self.owner_id}):
            if not await self._redis.exists(self._key("fleet", owner)):
                await self._redis.srem(self._key("fleets"), owner)

    async def orphans_exist(self) -> bool:
        """Cheap check before a store scan: is any registered owner's lease gone?"""
        owners = sorted(str(owner) for owner in await self._redis.smembers(self._key("fleets")))
        async with self._redis.pipeline(transaction=False) as pipe:
            for owner in owners:
                pipe.exists(self._key("fleet", owner))
            alive = await pipe.execute()
        return not all(alive)

    async def _take_over(self, owner: str) -> bool:
        if await self._redis.exists(self._key("fleet", owner)):
            return False
        # The marker only has to outlive the adoption: afterwards the jobs name their new owner.
        marker = self._key("taken", owner)
        won = await self._redis.set(marker, self.owner_id, nx=True, ex=60)
        # Ours already: an adoption of ours that failed half-way is being retried.
        won = won or await self._redis.get(marker) == self.owner_id
        if won:
            await self._redis.srem(self._key("fleets"), owner)
        return bool(won)

    async def alive(self, owner: str) -> bool:
        return owner == self.owner_id or bool(await self._redis.exists(self._key("fleet", owner)))

    async def joined(self, keys: Collection[JobKey]) -> None:
        by_kind: dict[str, dict[str, int]] = {}
        for kind, job_id in keys:
            by_kind.setdefault(kind, {})[str(job_id)] = job_id
        for kind, members in by_kind.items():
            await self._redis.zadd(self._key("active", kind), members)

    async def left(self, key: JobKey) -> None:
        await self._redis.zrem(self._key("active", key[0]), str(key[1]))
        await self._redis.publish(self._key("jobs", "halted"), job_member(key))

    async def active_ids(self, kind: str) -> list[int] | None:
        ids = await self._redis.zrevrange(self._key("active", kind), 0, -1)
        return [int(str(job_id)) for job_id in ids]

    async def next_halt(self) -> JobKey | None:
        return await self._halts.get()

    async def keep_alive(self) -> None:
        owner_id = self.owner_id
        sent_s = time.monotonic()  # the lease runs from no earlier than the request
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key("fleet", owner_id), "1", px=int(self.lease_s * 1000))
            pipe.sadd(self._key("fleets"), owner_id)
            await pipe.execute()
        if owner_id == self.owner_id:  # a renewal of an identity given up meanwhile counts not
            self._renewed_s = max(self._renewed_s, sent_s)

    def lease_fresh(self) -> bool:
        # A third of the lease is the margin for a halt to take effect before it expires.
        return time.monotonic() - self._renewed_s < self.lease_s * 2 / 3

    def renew_identity(self) -> str:
        old, self.owner_id = self.owner_id, uuid.uuid4().hex[:12]
        log.warning("lease of owner %s lost; its jobs go to whoever adopts them", old)
        self._renewed_s = -float("inf")
        return self.owner_id

    async def close(self) -> None:
        self._closed = True
        self._halts.put_nowait(None)
        try:
            # Leaving at once lets a live (or restarted) process adopt our jobs without waiting;
            # our id stays registered until they are adopted (or forgotten if there are none).
            await self._redis.delete(self._key("fleet", self.owner_id))
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            log.warning("could not release the lease at shutdown (it will expire): %s", exc)
        await self._redis.aclose()
