"""A shutdown that hangs ends anyway, after logging where it hung."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from latlab.cli.shutdown import ShutdownDeadline


async def test_an_overdue_shutdown_logs_the_stuck_tasks_and_exits_1(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exited = threading.Event()
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        exited.set()

    async def stuck_in_shutdown() -> None:
        await asyncio.Event().wait()

    stuck = asyncio.create_task(stuck_in_shutdown(), name="stuck")
    deadline = ShutdownDeadline(timeout_s=0.05, exit=fake_exit)
    with caplog.at_level(logging.ERROR, logger="latlab"):
        deadline.start()
        await asyncio.to_thread(exited.wait, 10)
    stuck.cancel()
    assert codes == [1]
    assert "shutdown still not done after 0.05 s" in caplog.text
    assert "stuck_in_shutdown" in caplog.text  # the coroutine where it hangs


async def test_a_shutdown_done_in_time_cancels_the_deadline() -> None:
    codes: list[int] = []
    deadline = ShutdownDeadline(timeout_s=0.05, exit=codes.append)
    deadline.start()
    deadline.cancel()
    assert deadline._timer is not None
    await asyncio.to_thread(deadline._timer.join, 10)
    assert codes == []
