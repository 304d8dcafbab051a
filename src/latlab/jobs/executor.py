"""Where job code runs. In-process now; a distributed executor implements the same protocol."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

Work = Callable[[], Coroutine[Any, Any, None]]
log = logging.getLogger("latlab.jobs")


class Executor(Protocol):
    def submit(self, job_id: int, work: Work) -> None:
        """Run ``work`` for ``job_id`` unless it already runs."""
        ...

    def is_running(self, job_id: int) -> bool: ...

    async def cancel(self, job_id: int) -> None:
        """Stop the job's work and wait until it has stopped."""
        ...

    async def shutdown(self) -> None: ...


class InProcessExecutor:
    """Runs each job as a task on this event loop and keeps a reference to every task."""

    def __init__(self) -> None:
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def submit(self, job_id: int, work: Work) -> None:
        if self.is_running(job_id):
            return
        task = asyncio.create_task(work(), name=f"latlab-job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda done: self._forget(job_id, done))

    def _forget(self, job_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s crashed", job_id, exc_info=task.exception())

    def is_running(self, job_id: int) -> bool:
        task = self._tasks.get(job_id)
        return task is not None and not task.done()

    async def cancel(self, job_id: int) -> None:
        task = self._tasks.get(job_id)
        if task is None:
            return
        task.cancel()
        # wait() neither raises the task's outcome nor swallows our own cancellation.
        await asyncio.wait([task])

    async def shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
