"""Which process runs which job, and what processes tell each other about them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from latlab.coordination.base import Coordinator, JobKey, RunningJobs
from latlab.coordination.local import LocalCoordinator
from latlab.reachable import until_reachable

__all__ = [
    "Coordinator",
    "CoordinatorUnavailable",
    "JobKey",
    "LocalCoordinator",
    "RunningJobs",
    "UnsupportedRedisURL",
    "check_redis_url",
    "open_coordinator",
]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


class CoordinatorUnavailable(ConnectionError):
    """Redis could not be reached before the start-up deadline."""


class UnsupportedRedisURL(ValueError):
    pass


def check_redis_url(url: str) -> str:
    """``url`` if redis-py can parse it (scheme, port, database, options); raise
    :class:`UnsupportedRedisURL` naming what is wrong, never the password, if not."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _REDIS_SCHEMES:
        known = ", ".join(f"{s}://" for s in _REDIS_SCHEMES)
        raise UnsupportedRedisURL(f"unsupported Redis URL scheme {scheme!r}; use one of: {known}")
    # Host and port only: what a message may show (no credentials, path or options).
    location = url.partition("://")[2].rpartition("@")[2].split("/", 1)[0].split("?", 1)[0]
    port = location.rpartition("]")[2].partition(":")[2]
    if port and not (port.isdigit() and int(port) <= 65535):
        raise UnsupportedRedisURL(f"port {port!r} of {location} is not a number from 0 to 65535")
    from redis.asyncio.connection import parse_url

    try:
        parse_url(url)
    except ValueError as exc:  # a database that is not a number, an option's bad value, ...
        raise UnsupportedRedisURL(f"{scheme}://{location}: {exc}") from None
    return url


async def open_coordinator(
    redis_url: str | None, prefix: str, timeout_s: float | None = None
) -> Coordinator:
    """Redis when configured (several API processes), otherwise this process alone.

    With ``timeout_s``, keep trying while Redis cannot be reached and raise
    :class:`CoordinatorUnavailable` once that long has passed; without it, try once.
    """
    if redis_url is None:
        return LocalCoordinator()
    check_redis_url(redis_url)
    from latlab.coordination.redis import RedisCoordinator

    if timeout_s is None:
        return await RedisCoordinator.open(redis_url, prefix)
    return await _until_reachable(
        lambda: RedisCoordinator.open(redis_url, prefix), timeout_s, redis_url
    )


async def _until_reachable(
    opener: Callable[[], Awaitable[Coordinator]], timeout_s: float, redis_url: str
) -> Coordinator:
    from redis.exceptions import AuthenticationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    location = redis_url.rpartition("@")[2].split("?", 1)[0]

    def gave_up(cause: str) -> CoordinatorUnavailable:
        message = f"Redis at {location} is not reachable after {timeout_s:g} s ({cause})"
        return CoordinatorUnavailable(message)

    return await until_reachable(
        opener,
        timeout_s,
        transient=(RedisConnectionError, RedisTimeoutError),
        gave_up=gave_up,
        fatal=(AuthenticationError,),  # a ConnectionError too, but waiting fixes no password
    )
