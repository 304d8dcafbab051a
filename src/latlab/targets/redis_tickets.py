"""The ``/test`` ticket queue in Redis, for workers that share a Redis (same machine or not).

Keys, under ``<redis_prefix>:targets:test:``: ``last`` (the last ticket given), ``queue``
(a sorted set of ``"<ticket>:<owner>"`` scored by ticket) and ``owner:<id>`` (one per
process, with a lease). Taking a ticket and finding the head are Lua scripts, so each is
atomic. A process renews its lease while it holds tickets; when a process dies its lease
expires and the next head lookup drops its tickets, so a crash stalls the queue for at
most one lease, never for good.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import redis.asyncio as redis

logger = logging.getLogger(__name__)

_TAKE = """
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
local ticket = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], ticket, ticket .. ':' .. ARGV[1])
return ticket
"""

# Returns the lowest ticket whose owner is alive, dropping dead owners' tickets on the way.
_HEAD = """
while true do
  local first = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #first == 0 then return false end
  local sep = string.find(first[1], ':', 1, true)
  if redis.call('EXISTS', ARGV[1] .. string.sub(first[1], sep + 1)) == 1 then
    return tonumber(string.sub(first[1], 1, sep - 1))
  end
  redis.call('ZREM', KEYS[1], first[1])
end
"""


class RedisTickets:
    poll_s: float | None = 0.002
    renew_s: float | None = 1.0
    lease_ms = 5000  # a live process renews five times per lease

    def __init__(self, url: str, prefix: str) -> None:
        self.owner = secrets.token_hex(6)
        self._redis: redis.Redis = redis.Redis.from_url(url)
        base = f"{prefix}:targets:test:"
        self._last_key, self._queue_key = base + "last", base + "queue"
        self._owners = base + "owner:"
        self._owner_key = self._owners + self.owner
        self._take: Any = self._redis.register_script(_TAKE)
        self._head: Any = self._redis.register_script(_HEAD)
        self._closed = False

    def _member(self, ticket: int) -> str:
        return f"{ticket}:{self.owner}"

    async def take(self) -> int:
        keys = [self._last_key, self._queue_key, self._owner_key]
        return int(await self._take(keys=keys, args=[self.owner, self.lease_ms]))

    async def head(self) -> int | None:
        found = await self._head(keys=[self._queue_key], args=[self._owners])
        return None if found is None else int(found)

    async def leave(self, ticket: int) -> None:
        await self._redis.zrem(self._queue_key, self._member(ticket))

    async def keep_alive(self) -> None:
        await self._redis.set(self._owner_key, b"1", px=self.lease_ms)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._redis.delete(self._owner_key)  # its tickets are dropped at once
        except redis.RedisError as exc:
            logger.warning("could not release the /test queue (%s); the lease will expire", exc)
        finally:
            await self._redis.aclose()
