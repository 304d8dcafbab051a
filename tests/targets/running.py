"""The targets in the test's own event loop, with settings for tests."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis

from latlab.settings import Settings
from latlab.targets.server import open_targets
from services import REDIS_URL

SettingsFactory = Callable[..., Settings]


def settings_for(**overrides: Any) -> Settings:
    """Targets on a free loopback port, a short /test work, a Redis prefix of their own."""
    values: dict[str, Any] = {
        "targets_host": "127.0.0.1",
        "targets_port": 0,
        "targets_work_s": 0.1,
        "redis_prefix": new_prefix(),
        "log_level": "warning",
    }
    return Settings(**{**values, **overrides})


def new_prefix() -> str:
    return f"latlab-test-{secrets.token_hex(4)}"


def forget(prefix: str) -> None:
    """Delete the Redis keys a test left under its prefix (``services.REDIS_URL``)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[int]:
    """Serve until the block ends; fails the test if an exception reached the loop."""
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    try:
        async with open_targets(settings) as server:
            yield server.port
    finally:
        loop.set_exception_handler(None)
    assert escaped == []
