"""``GET /test`` (seed 001): serialized work, in turns taken from a ticket queue.

``SerialWork`` answers ``{"elapsed": s}`` once the request's turn of work is done: works never
overlap and run in arrival order; ``elapsed`` is measured from arrival to the end of the work
on a monotonic clock. The answer also carries, as headers, what a test needs to prove the
order without guessing from ``elapsed``: the ticket and the wall-clock times (Unix seconds)
of arrival, ticket taken, work start and work end.

``SerialQueue`` gives the turns, for the requests of one process.

The process's requests take tickets in their arrival order (one at a time, through a FIFO
lock) and wait on a future each; one dispatcher task per process looks at the queue's head
and wakes the waiter whose ticket it is. It looks again at once when a ticket of this
process leaves, and every ``poll_s`` while the head belongs to another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus

from latlab.serving.routes import Answer
from latlab.serving.wire import Request, Response, detail, json_response
from latlab.targets.counters import Cell
from latlab.targets.tickets import Tickets

logger = logging.getLogger(__name__)


class TicketsUnavailableError(Exception):
    """The ticket queue could not be reached, or this process's place in it was lost."""


@dataclass(frozen=True, slots=True)
class Turn:
    ticket: int
    queued_at_s: float  # wall clock when the ticket was taken


class SerialQueue:
    def __init__(self, tickets: Tickets, counts: list[int]) -> None:
        self._tickets = tickets
        self._counts = counts
        self._held: set[int] = set()  # tickets of this process, waiting or working
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._take_lock = asyncio.Lock()  # asyncio.Lock is FIFO: tickets in arrival order
        self._changed = asyncio.Event()
        self._none_held = asyncio.Event()
        self._none_held.set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._orphans: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[Turn]:
        """Wait for this request's turn; leave the queue on exit, whatever happens."""
        ticket = await self._take()
        queued_at_s = time.time()
        try:
            try:
                await self._wait(ticket)
            except asyncio.CancelledError:
                self._counts[Cell.TEST_ABANDONED] += 1
                raise
            yield Turn(ticket, queued_at_s)
        finally:
            await self._leave(ticket)

    async def _take(self) -> int:
        async with self._take_lock:
            taking = asyncio.ensure_future(self._tickets.take())
            try:
                ticket = await asyncio.shield(taking)
            except asyncio.CancelledError:
                # The client left while a ticket was being taken: give it back when it comes.
                taking.add_done_callback(self._leave_orphan)
                raise
            except Exception as exc:
                raise TicketsUnavailableError(str(exc)) from exc
        self._held.add(ticket)
        self._none_held.clear()
        self._counts[Cell.TEST_TICKETS] += 1
        self._counts[Cell.TEST_QUEUED] = len(self._held)
        return ticket

    async def _wait(self, ticket: int) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = future
        self._changed.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        await future

    async def _leave(self, ticket: int) -> None:
        self._waiting.pop(ticket, None)
        try:
            await asyncio.shield(self._tickets.leave(ticket))
        except Exception:
            logger.warning("could not leave the /test queue; the ticket expires with its owner")
        finally:
            self._held.discard(ticket)
            self._counts[Cell.TEST_QUEUED] = len(self._held)
            if not self._held:
                self._none_held.set()
            self._changed.set()

    def _leave_orphan(self, taking: asyncio.Future[int]) -> None:
        if taking.cancelled() or taking.exception() is not None:
            return
        task = asyncio.create_task(self._tickets.leave(taking.result()))
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)

    async def _dispatch(self) -> None:
        renewed_at = time.monotonic()
        while self._held:
            self._changed.clear()
            known = list(self._waiting)  # a ticket taken during the lookup may be missing
            try:
                head = await self._tickets.head()
                if self._tickets.renew_s and time.monotonic() - renewed_at > self._tickets.renew_s:
                    await self._tickets.keep_alive()
                    renewed_at = time.monotonic()
            except Exception as exc:
                self._fail(known, exc)
                head = None
            self._wake(head, known)
            await self._sleep(head)

    def _wake(self, head: int | None, known: list[int]) -> None:
        waiter = self._waiting.pop(head, None) if head is not None else None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        # A waiting ticket below the head (or with no head) was dropped by someone who
        # took this process for dead: that request cannot be served in order any more.
        lost = [ticket for ticket in known if head is None or ticket < head]
        self._fail(lost, RuntimeError("this process's place in the /test queue was lost"))

    def _fail(self, tickets: list[int], exc: Exception) -> None:
        for ticket in tickets:
            waiter = self._waiting.pop(ticket, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(TicketsUnavailableError(str(exc)))

    async def _sleep(self, head: int | None) -> None:
        # While one of ours works, only our own leave can change the head.
        timeout = None if head in self._held else self._tickets.poll_s
        if self._tickets.renew_s is not None:
            timeout = min(timeout or self._tickets.renew_s, self._tickets.renew_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    async def close(self) -> None:
        # Requests cancelled at shutdown give their tickets back first (bounded wait).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_held.wait(), 1.0)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        await asyncio.gather(*self._orphans, return_exceptions=True)
        await self._tickets.close()


class SerialWork:
    def __init__(self, queue: SerialQueue, work_s: float) -> None:
        self._queue = queue
        self._work_s = work_s
        self._pid = str(os.getpid())

    def handle(self, _request: Request) -> Answer:
        # Arrival is now, while the request is parsed, not when its task first runs.
        return self._serve(time.time(), time.perf_counter())

    async def _serve(self, arrived_at_s: float, arrived: float) -> Response:
        try:
            async with self._queue.turn() as turn:
                started_at_s = time.time()
                await asyncio.sleep(self._work_s)  # the seed's "useful work"
                ended_at_s = time.time()
                elapsed_s = time.perf_counter() - arrived
        except TicketsUnavailableError as exc:
            return detail(HTTPStatus.SERVICE_UNAVAILABLE, f"the /test queue failed: {exc}")
        headers = [
            ("x-ticket", str(turn.ticket)),
            ("x-arrived-at", f"{arrived_at_s:.6f}"),
            ("x-queued-at", f"{turn.queued_at_s:.6f}"),
            ("x-work-started-at", f"{started_at_s:.6f}"),
            ("x-work-ended-at", f"{ended_at_s:.6f}"),
            ("x-worker-pid", self._pid),
        ]
        return json_response(HTTPStatus.OK, {"elapsed": elapsed_s}, headers)
