"""The live feed's sink: fans stored results and state changes out to connected clients.

Each client holds a :class:`Subscription` with a bounded buffer. The seam calls the hub inline
from the batch writer and the job manager, so the hub never waits: it appends to the buffers
of the subscriptions that asked for the job (a dict lookup, then O(those subscriptions)), and a
subscription whose buffer is full is marked overflowed, emptied and woken, so its reader says
so and ends. A slow client therefore costs at most its buffer, never a probe's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from latlab.exporters.base import LoadSecond, LoadTags, ProbeTags, SinkBase, StateChange
from latlab.storage.records import ProbeResult

JobKey = tuple[str, int]  # (kind, id): ids are per kind, so an id alone names no job
PROBE = "probe"
LOAD = "load"


@dataclass(frozen=True, slots=True)
class Deleted:
    """The job and its records were deleted."""

    kind: str
    job_id: int


@dataclass(frozen=True, slots=True)
class Overflow:
    """The client fell more than its buffer behind; what it missed was dropped."""


OVERFLOW = Overflow()
LiveEvent = ProbeResult | LoadSecond | StateChange | Deleted


class Subscription:
    """One client's view of the hub: a bounded buffer, read with ``async for``.

    Iteration yields events in the order the hub saw them; after an overflow it yields
    :data:`OVERFLOW` once and stops. Leaving the ``with`` block unsubscribes.
    """

    def __init__(self, hub: LiveHub, job: JobKey | None, size: int) -> None:
        self.job = job
        self.overflowed = False
        self._told = False  # OVERFLOW was yielded: the next step ends the iteration
        self._hub = hub
        self._size = size
        self._buffer: deque[LiveEvent] = deque()
        self._wakeup = asyncio.Event()
        self._half_full = asyncio.Event()  # ends a linger: our batching must not overflow it

    def push(self, events: Sequence[LiveEvent]) -> None:
        """Buffer ``events``, or mark the subscription overflowed; never blocks."""
        if self.overflowed:
            return
        if len(self._buffer) + len(events) > self._size:
            self.overflowed = True
            self._buffer.clear()  # the client will not get them: free the memory now
        else:
            self._buffer.extend(events)
            if 2 * len(self._buffer) >= self._size:
                self._half_full.set()
        self._wakeup.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._hub.unsubscribe(self)

    def __aiter__(self) -> Self:
        return self

    def take(self) -> list[LiveEvent]:
        """What is buffered now, without waiting (nothing after an overflow)."""
        events = list(self._buffer)
        self._buffer.clear()
        return events

    async def batch(self, linger_s: float = 0.0) -> list[LiveEvent | Overflow]:
        """Everything buffered, at least one event, after ``linger_s`` more for others to
        gather (one write for many events is what keeps many clients cheap) or until the
        buffer is half full; ``[OVERFLOW]`` once after an overflow, then ``[]`` for the end."""
        while not self._buffer and not self.overflowed:
            self._wakeup.clear()
            await self._wakeup.wait()
        if linger_s and not self.overflowed and not self._half_full.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(linger_s):
                    await self._half_full.wait()
        self._half_full.clear()
        if self.overflowed:
            if self._told:
                return []
            self._told = True
            return [OVERFLOW]
        events: list[LiveEvent | Overflow] = list(self._buffer)
        self._buffer.clear()
        return events

    async def __anext__(self) -> LiveEvent | Overflow:
        while not self._buffer and not self.overflowed:
            self._wakeup.clear()
            await self._wakeup.wait()
        if not self.overflowed:
            return self._buffer.popleft()
        if self._told:
            raise StopAsyncIteration
        self._told = True
        return OVERFLOW


class LiveHub(SinkBase):
    """The seam's sink for live clients. Subscribe to one job, or to every state change."""

    def __init__(self, buffer: int = 10_000) -> None:
        self.buffer = buffer
        self._by_job: dict[JobKey, set[Subscription]] = {}
        self._every_state: set[Subscription] = set()
        self._every_result: set[Subscription] = set()

    @property
    def subscriptions(self) -> int:
        """Subscriptions open now (one per connected client)."""
        return sum(map(len, self._by_job.values())) + len(self._every_state)

    def subscribe(self, job: JobKey | None = None, *, results: bool = False) -> Subscription:
        """The results (probe jobs) and state changes of ``job``; or, without a job, every
        job's state changes, and with ``results`` every experiment's results too."""
        subscription = Subscription(self, job, self.buffer)
        if job is not None:
            self._by_job.setdefault(job, set()).add(subscription)
            return subscription
        self._every_state.add(subscription)
        if results:
            self._every_result.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription.job is None:
            self._every_state.discard(subscription)
            self._every_result.discard(subscription)
            return
        subscribers = self._by_job.get(subscription.job)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._by_job[subscription.job]

    def _of(self, job: JobKey, everyone: set[Subscription]) -> Iterable[Subscription]:
        # A push only sets an asyncio.Event: no reader runs (or unsubscribes) meanwhile.
        return itertools.chain(self._by_job.get(job, ()), everyone)

    def probed(self, experiment_id: int, tags: ProbeTags, results: Sequence[ProbeResult]) -> None:
        if not results:
            return
        for subscription in self._of((PROBE, experiment_id), self._every_result):
            subscription.push(results)

    def load_second(self, tags: LoadTags, second: LoadSecond) -> None:
        for subscription in self._by_job.get((LOAD, second.run_id), ()):
            subscription.push((second,))

    def state_changed(self, change: StateChange) -> None:
        for subscription in self._of((change.kind, change.job_id), self._every_state):
            subscription.push((change,))

    def deleted(self, kind: str, job_id: int) -> None:
        for subscription in self._of((kind, job_id), self._every_state):
            subscription.push((Deleted(kind, job_id),))
