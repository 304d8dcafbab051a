"""The load runs whose pools are starting in this process.

Between a run's start and its pool's first request there is a moment (the target checked,
the worker processes started: ~0.1 s, more for a target slow to accept) when the run is
``running`` but has no pool to change. A rate or connection change asked then waits for
the pool rather than being refused: ``POST …?start=true`` then ``PATCH`` at once is a
natural thing to do, and it got a 409 (``not running in any process``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class PoolStarts:
    def __init__(self) -> None:
        self._starting: dict[int, asyncio.Event] = {}

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._starting

    @contextlib.contextmanager
    def starting(self, job_id: int) -> Iterator[None]:
        """The run's pool is being started here until :meth:`up`, or until the block ends
        (it failed, or had nothing to send)."""
        event = self._starting[job_id] = asyncio.Event()
        try:
            yield
        finally:
            event.set()
            if self._starting.get(job_id) is event:
                del self._starting[job_id]

    def up(self, job_id: int) -> None:
        """The run's pool sends: whoever waits for it goes on."""
        event = self._starting.pop(job_id, None)
        if event is not None:
            event.set()

    async def wait(self, job_id: int, within_s: float) -> None:
        """Until the run's pool is up or gave up, at most ``within_s``; at once if it is not
        starting here."""
        event = self._starting.get(job_id)
        if event is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await event.wait()
