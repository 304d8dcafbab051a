"""Run the control API and the targets on one uvloop event loop, or the targets alone.

Start-up runs in the order that lets a mistake end it with nothing to undo and one line
(``startup.py``): settings, the API's port, the targets, then the app's resources (store,
Redis, resumed jobs) opened here rather than by uvicorn, which would print its own traceback.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from latlab.cli.api_connections import (
    KEEP_ALIVE_S,
    ConnectionBudget,
    capped_protocol,
    connection_budget,
)
from latlab.cli.binding import (
    Listen,
    api_listen,
    bind,
    bind_error,
    check_exposure,
    check_ports,
    has_token,
    is_bind_error,
    is_loopback,
)
from latlab.cli.logs import StartupLog
from latlab.cli.shutdown import ShutdownDeadline
from latlab.cli.startup import reporting_startup
from latlab.serving.counting import REQUEST_CELLS
from latlab.serving.runner import run
from latlab.serving.signals import STOP_SIGNALS
from latlab.settings import Settings
from latlab.storage.registry import check_url

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from latlab.app import TargetsHere

logger = logging.getLogger("latlab")
GRACEFUL_SHUTDOWN_S = 5
State = Mapping[str, Any]


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


def _already_open(state: State) -> Callable[[Any], AbstractAsyncContextManager[State]]:
    """A lifespan for uvicorn that hands out ``state``; opening and closing stay ours."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[State]:
        yield state

    return lifespan


async def _open_targets(settings: Settings, stack: contextlib.AsyncExitStack) -> TargetsHere:
    from latlab.targets.server import open_targets

    port_setting = "LATLAB_TARGETS_PORT / --targets-port"
    listen = Listen(
        settings.targets_host, settings.targets_port, "LATLAB_TARGETS_HOST", port_setting
    )
    try:
        targets = await stack.enter_async_context(open_targets(settings))
    except OSError as exc:
        if not is_bind_error(exc):
            raise
        raise bind_error(exc, listen) from exc
    logger.info("targets on http://%s:%d", settings.targets_host, targets.port)
    if settings.targets_workers > 1:
        logger.warning(
            "LATLAB_TARGETS_WORKERS=%d is for `latlab targets`; `latlab serve` answers in its own"
            " process (for more: `latlab serve --no-targets`, `latlab targets --workers %d`)",
            settings.targets_workers,
            settings.targets_workers,
        )
    return lambda: targets.counts.cells[:REQUEST_CELLS], targets.port


def _uvicorn_server(
    settings: Settings, max_connections: int, targets: TargetsHere | None
) -> tuple[FastAPI, uvicorn.Server]:
    import uvicorn

    from latlab.app import create_app

    app = create_app(settings, targets=targets)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=capped_protocol(max_connections, settings.targets_header_timeout_s),
        timeout_keep_alive=KEEP_ALIVE_S,
        # Requests still open this long after a stop (a live feed, say) are cancelled.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
    )
    return app, uvicorn.Server(config)


async def serve(settings: Settings, api_socket: socket.socket, log: StartupLog) -> None:
    # With --port 0 the kernel picked the port; the target policy must know the real one.
    settings = settings.model_copy(update={"port": api_socket.getsockname()[1]})
    budget = connection_budget(settings)
    deadline = ShutdownDeadline()
    try:
        async with contextlib.AsyncExitStack() as stack:
            targets = None
            if settings.targets_enabled:
                # Up before the API, so experiments resumed at start-up find their target.
                targets = await _open_targets(_with_targets_share(settings, budget), stack)
            app, server = _uvicorn_server(settings, budget.api, targets)
            # A stop asked for during start-up ends the server as soon as it is up.
            stack.enter_context(_signals_stop(server))
            state = await stack.enter_async_context(app.router.lifespan_context(app))
            app.router.lifespan_context = _already_open(state or {})
            log.started()
            # Listening before the announcement: a client that reads it may connect at once
            # (uvicorn listens again, with its own backlog).
            api_socket.listen()
            _announce(settings, settings.port)
            await server.serve(sockets=[api_socket])
            deadline.start()  # what the stack closes now (jobs, store, targets) gets a limit
    finally:
        deadline.cancel()


def _with_targets_share(settings: Settings, budget: ConnectionBudget) -> Settings:
    """The targets' cap, unless set, is their share of the descriptors, not all of them."""
    return settings.model_copy(update={"targets_max_connections": budget.targets})


def _announce(settings: Settings, port: int) -> None:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    logger.info("API on http://%s:%d", host, port)
    if not has_token(settings) and not is_loopback(settings.host):
        logger.warning("no API token (--insecure): anyone who reaches %s drives LatLab", host)


def run_serve(overrides: Mapping[str, Any], *, verbose: bool = False) -> None:
    """``latlab serve``: ``overrides`` are the command-line options given."""
    log = StartupLog()
    with reporting_startup(verbose, log):
        settings = Settings(**overrides)
        log.set_level(settings.log_level)
        check_exposure(settings)
        check_ports(settings)
        check_url(settings.storage_url)
        # Bound first: a port in use fails at once, before the app is even imported.
        with bind(api_listen(settings)) as api_socket:
            run(serve(settings, api_socket, log))


def run_targets(overrides: Mapping[str, Any], *, verbose: bool = False) -> None:
    """Serve the targets until SIGINT/SIGTERM; several worker processes if asked."""
    from latlab.targets.worker import serve_until_signalled
    from latlab.targets.workers import supervise

    with reporting_startup(verbose):
        settings = Settings(**overrides)
        _configure_logging(settings.log_level)
        try:
            if settings.targets_workers > 1:
                status = run(supervise(settings))
            else:
                run(serve_until_signalled(settings))
                status = 0
        except OSError as exc:  # the port is taken, the address is not ours, ...
            if is_bind_error(exc):
                raise bind_error(exc, _targets_listen(settings)) from exc
            logger.error("targets: %s", exc)
            status = 1
    if status:
        raise SystemExit(status)


def _targets_listen(settings: Settings) -> Listen:
    host, port = settings.targets_host, settings.targets_port
    return Listen(host, port, "LATLAB_TARGETS_HOST / --host", "LATLAB_TARGETS_PORT / --port")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic announces every plugin it loads at INFO; only its migrations are worth a line.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
