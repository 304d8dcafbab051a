"""The pipeline's durable queue: Redis Streams when configured, else LatLab's SQL store."""

from __future__ import annotations

from latlab.pipeline.queue.base import Outcome, PipelineQueue, QueueUnavailable

__all__ = ["Outcome", "PipelineQueue", "QueueUnavailable", "open_queue"]

_SQL_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")


async def open_queue(
    *,
    redis_url: str | None,
    storage_url: str,
    redis_prefix: str,
    consumer: str = "handler-1",
    lease_s: float = 30.0,
) -> PipelineQueue:
    """Redis when ``redis_url`` is set (services anywhere); otherwise a table in the SQL
    store (one process: ``pipeline up``). Adapters are imported only when used.

    ``consumer`` and ``lease_s`` are the Redis handler's name and lease (see
    :class:`~latlab.pipeline.queue.redis.RedisQueue`); the SQL queue has one handler."""
    if redis_url is not None:
        from latlab.pipeline.queue.redis import RedisQueue

        return await RedisQueue.open(redis_url, redis_prefix, consumer=consumer, lease_s=lease_s)
    from latlab.storage.registry import normalize_url

    url = normalize_url(storage_url)
    if url.partition("://")[0] not in _SQL_SCHEMES:
        raise QueueUnavailable(
            "the pipeline's embedded queue needs an SQL store (sqlite or postgresql) "
            "or LATLAB_REDIS_URL"
        )
    from latlab.pipeline.queue.sql import SqlQueue

    return await SqlQueue.open(url)
