"""The worker fleet in Redis: who is up, where, with how much room, running what.

Each worker renews its entry about every ``lease_s / 3``: a key with its description that
expires after ``lease_s`` and a member of a sorted set scored by its last heartbeat. A worker
whose key has expired is gone: listing the fleet forgets it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from latlab.coordination.base import JobKey
from latlab.coordination.streams import worker_streams

if TYPE_CHECKING:  # imported by the API's schemas: no Redis client loaded for them
    import redis.asyncio as redis

log = logging.getLogger("latlab.coordination")
ANY_LOCATION = "any"  # what a job not pinned anywhere asks for; every worker reads its jobs


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    location: str
    capacity: int
    jobs: list[JobKey] = field(default_factory=list)
    last_heartbeat: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> str:
        fields = asdict(self)
        fields["jobs"] = [list(key) for key in self.jobs]
        fields["last_heartbeat"] = self.last_heartbeat.isoformat()
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> WorkerInfo:
        fields = json.loads(text)
        return cls(
            id=str(fields["id"]),
            location=str(fields["location"]),
            capacity=int(fields["capacity"]),
            jobs=[(str(kind), int(job_id)) for kind, job_id in fields["jobs"]],
            last_heartbeat=datetime.fromisoformat(fields["last_heartbeat"]),
        )


class Fleet:
    """The registry of live workers, read and written through one Redis client."""

    def __init__(self, client: redis.Redis, prefix: str, lease_s: float) -> None:
        self._redis = client
        self._members = f"{prefix}:workers"
        self._prefix = prefix
        self._lease_ms = int(lease_s * 1000)

    def _key(self, worker_id: str) -> str:
        return f"{self._prefix}:worker:{worker_id}"

    async def heartbeat(self, info: WorkerInfo) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(info.id), info.to_json(), px=self._lease_ms)
            pipe.zadd(self._members, {info.id: time.time()})
            await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(worker_id))
            pipe.zrem(self._members, worker_id)
            await pipe.execute()

    async def live(self) -> list[WorkerInfo]:
        """The workers whose lease holds, by id; entries of gone workers are removed."""
        ids = sorted(str(member) for member in await self._redis.zrange(self._members, 0, -1))
        if not ids:
            return []
        described = [
            None if text is None else str(text)
            for text in await self._redis.mget([self._key(i) for i in ids])
        ]
        gone = [worker_id for worker_id, text in zip(ids, described, strict=True) if text is None]
        if gone:
            await self._redis.zrem(self._members, *gone)
            # A worker killed never left: its own dispatch streams go with its entry.
            await self._redis.delete(*(s for g in gone for s in worker_streams(self._prefix, g)))
        return [info for text in described if text is not None and (info := _parsed(text))]


def _parsed(text: str) -> WorkerInfo | None:
    """An entry, or None for one this version cannot read (another version's, a stray key):
    skipped, so that one bad entry cannot hide the whole fleet."""
    try:
        return WorkerInfo.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("skipping a worker entry that cannot be read (%s): %.200s", exc, text)
        return None
