"""SIGINT and SIGTERM as a clean stop, whatever the process inherited.

A process started as a background job of a non-interactive shell (``make test &``, a CI
step) inherits SIGINT ignored, and an ignored signal stays ignored across ``exec``. Python
then installs no KeyboardInterrupt handler, so Ctrl-C or ``kill -INT`` would do nothing.
Both helpers here therefore install their handlers for both signals explicitly.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncio costs the robot, which needs only ``interrupt``, 30 ms at start
    import asyncio

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupt(_signum: int, _frame: FrameType | None) -> None:
    """A handler that makes a signal end blocking code as Ctrl-C does."""
    raise KeyboardInterrupt


def interrupt_on_stop_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (synchronous code)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (a graceful shutdown) instead of ending the process;
    the running loop's handlers, installed even over an inherited SIG_IGN."""
    import asyncio

    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
