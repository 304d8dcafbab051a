"""A deadline on shutdown: once the server has stopped, closing what it owns must finish in
time. A shutdown that hangs (a task that ignores its cancellation) would otherwise keep the
process, its port and its jobs' leases until someone kills it with SIGKILL, and leave no
trace of where it hung.

Past the deadline every thread's stack and every task's coroutine stack go to the log, and
the process exits with code 1. Jobs are durable: what they did not checkpoint is resumed at
the next start (at most one probe or number repeated).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import io
import logging
import os
import sys
import threading
from collections.abc import Callable

logger = logging.getLogger("latlab")

SHUTDOWN_TIMEOUT_S = 10.0
TASK_DUMP_WAIT_S = 1.0  # how long the loop gets to list its tasks, if it still runs at all


class ShutdownDeadline:
    """``start()`` when shutdown begins, ``cancel()`` once it is done."""

    def __init__(
        self, timeout_s: float = SHUTDOWN_TIMEOUT_S, exit: Callable[[int], None] = os._exit
    ) -> None:
        self._timeout_s = timeout_s
        self._exit = exit
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = threading.Timer(self._timeout_s, self._overdue, args=(loop,))
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _overdue(self, loop: asyncio.AbstractEventLoop) -> None:
        logger.error("shutdown still not done after %g s; exiting anyway", self._timeout_s)
        _dump_threads()
        listed = threading.Event()
        with contextlib.suppress(RuntimeError):  # a closed loop: only the threads can tell
            loop.call_soon_threadsafe(_log_tasks, loop, listed)
        listed.wait(TASK_DUMP_WAIT_S)
        for handler in logging.getLogger().handlers + logger.handlers:
            handler.flush()
        self._exit(1)


def _dump_threads() -> None:
    """Every thread's stack on stderr (faulthandler writes to a file descriptor, not a log)."""
    try:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    except (ValueError, io.UnsupportedOperation):  # stderr is closed, or not a real file
        logger.error("thread stacks unavailable: stderr is not a file")


def _log_tasks(loop: asyncio.AbstractEventLoop, listed: threading.Event) -> None:
    for task in asyncio.all_tasks(loop):
        stack = io.StringIO()
        task.print_stack(file=stack)
        logger.error("task still running: %s", stack.getvalue())
    listed.set()
