"""SIGINT and SIGTERM stop cleanly even when the process inherited SIGINT ignored."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from latlab.serving.signals import STOP_SIGNALS, interrupt_on_stop_signals, stop_on_signals


@contextmanager
def ignored_as_a_background_job() -> Iterator[None]:
    """Both signals ignored, as a background job starts (SIGINT); restored afterwards."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=["SIGINT", "SIGTERM"])
async def test_stop_on_signals_sets_stop_over_an_ignored_signal(sig: signal.Signals) -> None:
    stop = asyncio.Event()
    with ignored_as_a_background_job(), stop_on_signals(stop):
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(stop.wait(), 5)


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_interrupt_on_stop_signals_raises_keyboard_interrupt(sig: signal.Signals) -> None:
    with ignored_as_a_background_job():
        interrupt_on_stop_signals()
        with pytest.raises(KeyboardInterrupt):
            _signal_self_and_wait(sig)


def _signal_self_and_wait(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(5)  # the handler raises at once; an ignored signal would let this run
