"""The coordination listener ends when cancelled, even if a read swallowed the cancel.

Found by a worker's shutdown that hung: on Python 3.11 redis-py's read can return instead
of raising when a cancel meets it (CPython gh-86296), and the listener read on for ever.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from latlab.coordination.redis import RedisCoordinator, open_client
from services import require_redis
from swallowed import ends_when_cancelled, swallow_the_cancel


async def test_the_listener_ends_although_a_read_swallowed_the_cancel() -> None:
    client = open_client(require_redis(), 1.0)
    coordinator = RedisCoordinator(client, f"listener-{secrets.token_hex(4)}")
    reading, real_pubsub = asyncio.Event(), client.pubsub

    def pubsub(**options: Any) -> Any:
        channel = real_pubsub(**options)

        async def get_message(**_read: Any) -> None:  # the transport seam: one read
            await swallow_the_cancel(reading)

        channel.get_message = get_message  # type: ignore[method-assign,assignment]
        return channel

    client.pubsub = pubsub  # type: ignore[method-assign]
    try:
        await ends_when_cancelled(asyncio.create_task(coordinator.listen()), reading)
    finally:
        await client.aclose()
