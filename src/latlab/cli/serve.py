"""Run the control API and the targets on one uvloop event loop, or the targets alone."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from latlab.serving.runner import run
from latlab.serving.signals import STOP_SIGNALS
from latlab.settings import Settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic announces every plugin it loads at INFO; only its migrations are worth a line.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


@contextlib.contextmanager
def _signals_stop(server: object) -> Iterator[None]:
    """SIGINT/SIGTERM end uvicorn gracefully and return, so the targets get to close too.

    uvicorn re-raises the signal it stopped on once it is done; with these handlers in place
    that re-raise only asks again for the exit already under way.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda _sig, _frame: setattr(server, "should_exit", True))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def serve(settings: Settings) -> None:
    import uvicorn

    from latlab.app import create_app
    from latlab.targets.server import open_targets

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
    async with contextlib.AsyncExitStack() as stack:
        if settings.targets_enabled:
            # Up before the API, so experiments resumed at start-up find their target.
            targets = await stack.enter_async_context(open_targets(settings))
            logging.getLogger("latlab").info(
                "targets on http://%s:%d", settings.targets_host, targets.port
            )
        with _signals_stop(server):
            await server.serve()


def run_serve(settings: Settings) -> None:
    _configure_logging(settings.log_level)
    run(serve(settings))


def run_targets(settings: Settings) -> None:
    """Serve the targets until SIGINT/SIGTERM; several worker processes if asked."""
    from latlab.targets.worker import serve_until_signalled
    from latlab.targets.workers import supervise

    _configure_logging(settings.log_level)
    try:
        if settings.targets_workers > 1:
            status = run(supervise(settings))
        else:
            run(serve_until_signalled(settings))
            status = 0
    except OSError as exc:  # the port is taken, the address is not ours, ...
        logging.getLogger("latlab").error("targets: %s", exc)
        status = 1
    if status:
        raise SystemExit(status)
