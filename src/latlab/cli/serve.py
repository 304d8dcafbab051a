"""Run the control API and the targets on one uvloop event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from latlab.settings import Settings


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop has no Windows build; the stdlib loop works, only slower
        asyncio.run(main)
        return
    uvloop.run(main)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic announces every plugin it loads at INFO; only its migrations are worth a line.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


async def serve(settings: Settings) -> None:
    import uvicorn

    from latlab.app import create_app
    from latlab.targets.server import start_targets

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http="httptools",
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
    )
    server = uvicorn.Server(config)
    targets = None
    if settings.targets_enabled:
        # Up before the API, so experiments resumed at start-up find their target.
        targets = await start_targets(settings.targets_host, settings.targets_port)
        logging.getLogger("latlab").info(
            "targets on http://%s:%d", settings.targets_host, settings.targets_port
        )
    try:
        await server.serve()
    finally:
        if targets is not None:
            targets.close()
            with contextlib.suppress(asyncio.CancelledError):
                await targets.wait_closed()


def run_serve(settings: Settings) -> None:
    _configure_logging(settings.log_level)
    _run(serve(settings))


def run_targets(settings: Settings) -> None:
    from latlab.targets.server import serve_targets

    _configure_logging(settings.log_level)
    host, port = settings.targets_host, settings.targets_port
    logging.getLogger("latlab").info("targets on http://%s:%d", host, port)
    with contextlib.suppress(KeyboardInterrupt):
        _run(serve_targets(host, port))
