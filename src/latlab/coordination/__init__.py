"""Which process runs which job, and what processes tell each other about them."""

from __future__ import annotations

from latlab.coordination.base import Coordinator, JobKey, RunningJobs
from latlab.coordination.local import LocalCoordinator

__all__ = ["Coordinator", "JobKey", "LocalCoordinator", "RunningJobs", "open_coordinator"]


async def open_coordinator(redis_url: str | None, prefix: str) -> Coordinator:
    """Redis when configured (several API processes), otherwise this process alone."""
    if redis_url is None:
        return LocalCoordinator()
    from latlab.coordination.redis import RedisCoordinator

    return await RedisCoordinator.open(redis_url, prefix)
