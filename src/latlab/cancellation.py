"""Cancellations that a library swallowed, delivered after all.

On Python 3.11 ``asyncio.wait_for`` returns its awaitable's result when a cancel arrives just
as that awaitable completes (CPython gh-86296), and redis-py sends every command through it.
The task then stays "cancelling" but runs on: a loop of Redis calls (the pipeline's feeds,
a lease renewal) would never end, and a shutdown would wait for it for ever. Such loops call
:func:`deliver_lost_cancel` before each call. Nothing in LatLab uncancels a task on purpose,
so a task still "cancelling" outside an ``except CancelledError`` has lost one.
"""

from __future__ import annotations

import asyncio


def deliver_lost_cancel() -> None:
    """Raise ``CancelledError`` if this task was cancelled and never saw it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
