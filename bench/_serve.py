"""The control API under uvicorn in the bench's own process and loop, on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from _targets import free_port
from latlab.app import create_app
from latlab.settings import Settings


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[int]:
    """Serve ``create_app(settings)`` until the block ends; yield its port."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
