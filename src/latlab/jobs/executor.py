"""Where job code runs, addressed by ``(kind, job_id)`` so another process can run it too.

The manager binds a driver, ``drive(kind, job_id, started)``, that loads the job and runs its
kind's runner; an executor only decides where and keeps track of what runs. In-process now; a
distributed executor implements the same protocol with workers that run the same driver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from latlab.coordination import JobKey
from latlab.jobs.runner import Started

Driver = Callable[[str, int, Started], Coroutine[Any, Any, None]]
log = logging.getLogger("latlab.jobs")


class Executor(Protocol):
    def bind(self, drive: Driver) -> None:
        """The driver that runs one job; set once, before the first submit."""
        ...

    def submit(
        self, kind: str, job_id: int, location: str | None = None, prefer: str | None = None
    ) -> asyncio.Future[None]:
        """Run the job unless it already runs; the future is done once it has started.

        ``location``: where the job asked to run (a worker's ``--location``), if anywhere;
        ``prefer``: the process that ran it last, to go back to if it is a worker with room.
        """
        ...

    def running(self) -> list[JobKey]:
        """The jobs whose work runs here now."""
        ...

    def is_running(self, kind: str, job_id: int) -> bool: ...

    async def cancel(self, kind: str, job_id: int) -> None:
        """Stop the job's work and wait until it has stopped."""
        ...

    async def cancel_many(self, keys: list[JobKey]) -> None:
        """Stop the work of every job in ``keys`` at once and wait until all have stopped."""
        ...

    async def shutdown(self) -> None: ...


class InProcessExecutor:
    """Runs each job as a task on this event loop and keeps a reference to every task."""

    def __init__(self) -> None:
        self._tasks: dict[JobKey, asyncio.Task[None]] = {}
        self._drive: Driver | None = None

    def bind(self, drive: Driver) -> None:
        self._drive = drive

    def submit(
        self, kind: str, job_id: int, location: str | None = None, prefer: str | None = None
    ) -> asyncio.Future[None]:
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.is_running(kind, job_id):
            started.set_result(None)
            return started
        if self._drive is None:
            raise RuntimeError("InProcessExecutor.submit before bind")
        work = self._drive(kind, job_id, lambda: _resolve(started))
        task = asyncio.create_task(work, name=f"latlab-{kind}-{job_id}")
        self._tasks[(kind, job_id)] = task
        # A job that ends (or fails) before saying it started has started as far as it goes.
        task.add_done_callback(lambda done: self._forget((kind, job_id), done, started))
        return started

    def _forget(self, key: JobKey, task: asyncio.Task[None], started: asyncio.Future[None]) -> None:
        _resolve(started)
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s job %s crashed", *key, exc_info=task.exception())

    def running(self) -> list[JobKey]:
        return [key for key, task in self._tasks.items() if not task.done()]

    def is_running(self, kind: str, job_id: int) -> bool:
        task = self._tasks.get((kind, job_id))
        return task is not None and not task.done()

    async def until_done(self, kind: str, job_id: int) -> None:
        """Wait until the job's work here has ended (at once if none runs)."""
        task = self._tasks.get((kind, job_id))
        if task is not None:
            await asyncio.wait([task])

    async def cancel(self, kind: str, job_id: int) -> None:
        task = self._tasks.get((kind, job_id))
        if task is None:
            return
        task.cancel()
        # wait() neither raises the task's outcome nor swallows our own cancellation.
        await asyncio.wait([task])

    async def cancel_many(self, keys: list[JobKey]) -> None:
        tasks = [task for key in keys if (task := self._tasks.get(key)) is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def shutdown(self) -> None:
        await self.cancel_many(list(self._tasks))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
