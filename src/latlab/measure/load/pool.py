"""The worker processes of one run: started together, steered together, merged per second.

Each process runs :mod:`latlab.measure.load.process` with its share of the plan
(:func:`~latlab.measure.load.plan.split`). The pool reads their pipes on the caller's event
loop and yields each second once every worker has reported it (or finished), merged bucket
for bucket. The workers are daemonic, die with this process, and stop when it stops reading.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import Connection
from time import perf_counter
from typing import Any

from latlab.measure.load.plan import LoadPlan, shares, split
from latlab.measure.load.seconds import SecondStats
from latlab.measure.load.warm import Spawned, ended, spawn

READY_TIMEOUT_S = 30.0
# The first send waits this long after "start", so all workers begin as one: the message
# reaches a waiting process in well under a millisecond, and one that wakes later only
# starts behind its schedule (its sends counted late), never loses any. Part of every resume.
START_LEAD_S = 0.02


class LoadError(RuntimeError):
    """A worker process failed; the message says which and why."""


class _Worker:
    def __init__(self, process: subprocess.Popen[bytes], pipe: Connection, plan: LoadPlan) -> None:
        self.process = process
        self.pipe = pipe
        self.plan = plan
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reported = 0  # seconds received
        self.finished = False
        self.done = False  # ended by itself and said so (not lost, not failed)
        self.sent = 0
        self.cut_off = 0


class LoadPool:
    def __init__(
        self,
        plan: LoadPlan,
        address: tuple[int, str],
        processes: Callable[[], Spawned] = spawn,
    ) -> None:
        self.plan = plan
        self._address = address
        self._processes = processes  # a new process each call (or one started ahead: warm.py)
        self._workers: list[_Worker] = []
        self._seconds: dict[int, SecondStats] = {}
        self._yielded = 0
        self._changed = asyncio.Event()
        self._failure: str | None = None
        self.connections = plan.connections
        self.rate = plan.rate

    @property
    def workers(self) -> int:
        """Worker processes of this run (fewer than asked when connections are fewer)."""
        return len(self._workers)

    @property
    def sent(self) -> int:
        return sum(worker.sent for worker in self._workers)

    @property
    def accounted(self) -> bool:
        """Whether every request the target may have seen is counted: each worker ended by
        itself and none cut a request off in flight (a stop's drain gave up on it)."""
        return all(worker.done and worker.cut_off == 0 for worker in self._workers)

    async def start(self) -> None:
        """Start the processes and, once every one is ready, the run."""
        loop = asyncio.get_running_loop()
        for share in split(self.plan):
            worker = _Worker(*self._processes(), share)
            self._workers.append(worker)
            worker.pipe.send(("plan", share, self._address))
            loop.add_reader(worker.pipe.fileno(), self._on_message, worker)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await asyncio.gather(*(worker.ready for worker in self._workers))
        except BaseException:
            await self.close()
            raise
        start_s = perf_counter() + START_LEAD_S
        self._tell_all(("start", start_s, start_s + self.plan.warmup_s))

    async def seconds(self) -> AsyncIterator[SecondStats]:
        """Every second of the run, merged, in order; ends when every worker is done."""
        while True:
            while self._complete(self._yielded):
                yield self._seconds.pop(self._yielded, SecondStats(self._yielded))
                self._yielded += 1
            if self._failure is not None:
                raise LoadError(self._failure)
            if all(worker.finished for worker in self._workers):
                return
            self._changed.clear()
            await self._changed.wait()

    def _complete(self, second: int) -> bool:
        reported = [w.reported > second for w in self._workers if not w.finished]
        if reported:
            return all(reported)
        # Every worker finished: the seconds any of them reported are the run's.
        return second < max((w.reported for w in self._workers), default=0)

    def _on_message(self, worker: _Worker) -> None:
        try:
            message: tuple[Any, ...] = worker.pipe.recv()
        except (EOFError, OSError):
            self._lost(worker)
            return
        kind = message[0]
        if kind == "ready" and not worker.ready.done():
            worker.ready.set_result(None)
        elif kind == "second":
            stats = SecondStats.from_payload(message[1])
            merged = self._seconds.get(stats.second)
            if merged is None:
                self._seconds[stats.second] = stats
            else:
                merged.merge(stats)
            worker.reported = stats.second + 1
        elif kind == "done":
            worker.sent, worker.cut_off, worker.done = int(message[1]), int(message[2]), True
            self._finish(worker)
        elif kind == "failed":
            self._failure = f"load worker failed: {message[1]}"
            self._finish(worker)
        self._changed.set()

    def _lost(self, worker: _Worker) -> None:
        if not worker.finished:
            code = worker.process.poll()
            self._failure = self._failure or f"load worker died (exit code {code})"
        self._finish(worker)
        self._changed.set()

    def _finish(self, worker: _Worker) -> None:
        if not worker.ready.done():
            worker.ready.set_exception(LoadError(self._failure or "load worker ended early"))
        if not worker.finished:
            worker.finished = True
            asyncio.get_running_loop().remove_reader(worker.pipe.fileno())

    # --- control ---

    def set_rate(self, rate: float) -> None:
        if self.rate is None:
            raise ValueError("a closed-model run has no rate")
        self.rate = rate
        for worker, share in zip(self._workers, self._connection_shares(), strict=True):
            self._tell(worker, ("rate", rate * share / self.connections))

    def set_connections(self, connections: int) -> None:
        self.connections = connections
        first = 0
        for worker, share in zip(self._workers, self._connection_shares(), strict=True):
            self._tell(worker, ("connections", share, first, connections))
            first += share
        if self.rate is not None:
            self.set_rate(self.rate)

    def _connection_shares(self) -> list[int]:
        return shares(self.connections, len(self._workers))

    def pause(self) -> None:
        self._tell_all(("pause",))

    def resume(self) -> None:
        self._tell_all(("resume",))

    def stop(self) -> None:
        self._tell_all(("stop",))

    def _tell_all(self, message: tuple[Any, ...]) -> None:
        for worker in self._workers:
            self._tell(worker, message)

    def _tell(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        if not worker.finished:
            try:
                worker.pipe.send(message)
            except OSError:
                self._lost(worker)

    async def close(self) -> None:
        """Stop every worker and wait for its process to end (killed if it does not)."""
        self.stop()
        for worker in self._workers:
            self._finish(worker)
        await asyncio.gather(
            *(ended((worker.process, worker.pipe), told=True) for worker in self._workers)
        )
