"""One worker's load: its connections, its schedule, its seconds.

Closed model: each connection sends its next request as soon as the last one is answered.
Open model (wrk2's): connection ``i`` of ``c`` at rate ``r`` owns the intended send times
``start + (i + k·c) / r``; a request that cannot leave on time (its connection still waits
for an answer) leaves as soon as it can and is counted late, and its latency is recorded
both from the actual send (service) and from the intended one (corrected for coordinated
omission). Nothing is dropped.

All times are ``perf_counter`` seconds, one clock for every process of a run on Linux.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Callable
from time import perf_counter

from latlab.measure.errors import ErrorKind, error_kind
from latlab.measure.http_probe import describe_error
from latlab.measure.load.connection import HeadLoadConnection, LoadConnection, Slot
from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.seconds import SecondBook, SecondStats

LATE_AFTER_S = 0.010  # a send this far behind its intended time is late
SAME_MOMENT_S = 1e-6  # intended times closer than this are one (float rounding)
SWEEP_EVERY_S = 0.1  # timeouts are checked this often
STOP_DRAIN_S = 2.0  # a stop awaits the answers in flight this long; later ones are not counted

Emit = Callable[[SecondStats], None]


class LoadWorker:
    """Runs one worker's share of a plan on the running loop; ``emit`` gets each second."""

    def __init__(
        self,
        plan: LoadPlan,
        address: tuple[int, str],
        emit: Emit,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.plan = plan
        self._family, self._address = address
        self._tls = tls
        self._request = plan.encoded_request()
        self._connection = HeadLoadConnection if plan.request.method == "HEAD" else LoadConnection
        self._expect = plan.expect_status
        self._remaining = plan.requests  # sends left; None: until the deadline
        self._rate = plan.rate
        self._share = (plan.share_start, plan.share_of or plan.connections)
        self._slots: list[Slot] = []
        self._loop = asyncio.get_running_loop()
        self._start_s = self._count_from_s = self._end_s = 0.0
        self._book = SecondBook(emit, open_model=plan.rate is not None)
        self._paused_at: float | None = None
        self._stopping = False
        self._stopped_s = math.inf  # when stop() was asked: no send is missed after it
        self._finished = self._loop.create_future()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.sent = 0
        self.cut_off = 0  # counted requests in flight when the run ended: seen, never counted

    async def run(self, start_s: float, count_from_s: float) -> None:
        """Send from ``start_s`` (warm-up), count what finishes from ``count_from_s``, until
        the requests are done or the duration is over; then emit the last seconds."""
        self._start_s, self._count_from_s = start_s, count_from_s
        duration_s = self.plan.duration_s
        self._end_s = math.inf if duration_s is None else count_from_s + duration_s
        await _sleep_until(start_s)
        self._later("sweep", SWEEP_EVERY_S, self._sweep)
        self._book.count_from_s = count_from_s
        self._later("tick", self._book.until_second_ends(perf_counter()), self._tick)
        self._later("end", self._end_s - perf_counter(), self._done)
        try:
            self._resize(self.plan.connections, start_s)  # every worker from one start
            await self._finished
        finally:
            self._stopping = True
            self._count_missed(min(perf_counter(), self._end_s, self._stopped_s))
            for timer in self._timers.values():
                timer.cancel()
            for slot in self._slots:
                slot.cancel_timer()
                if slot.conn is not None:
                    self.cut_off += int(slot.conn.in_flight and slot.conn.counted)
                    slot.conn.close()  # what is in flight at the end is not counted (as wrk)
        elapsed_s = min(perf_counter(), self._end_s) - self._count_from_s
        last = math.ceil(elapsed_s) - 1
        self._book.emit_through(last, elapsed_s - last)

    def _count_missed(self, horizon_s: float) -> None:
        """Open model, duration runs: count the sends due before ``horizon_s`` that never
        left (the run could not keep up), into its last second; none is dropped unseen."""
        if self._rate is None or self._remaining is not None or self._paused_at is not None:
            return
        cutoff_s = horizon_s - LATE_AFTER_S  # a send due just now would not be late yet
        missed = 0
        for slot in self._slots:
            if slot.retiring or slot.interval_s <= 0:
                continue
            next_due_s = (
                slot.intended_s if slot.timer is not None else slot.intended_s + slot.interval_s
            )
            if next_due_s < cutoff_s:
                missed += int((cutoff_s - next_due_s) // slot.interval_s) + 1
        if missed and horizon_s > self._count_from_s:
            self._book.tally(horizon_s - 1e-9).missed_sends += missed

    def _later(self, name: str, delay_s: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` after ``delay_s``, in place of the one ``name`` had."""
        previous = self._timers.pop(name, None)
        if previous is not None:
            previous.cancel()
        if delay_s != math.inf:
            self._timers[name] = self._loop.call_later(max(0.0, delay_s), callback)

    # --- control (from the pool) ---

    def stop(self) -> None:
        """No request leaves any more; the answers in flight are awaited (up to
        ``STOP_DRAIN_S``) and counted, so that what the target saw is what the run records,
        and a run stopped and resumed elsewhere sends exactly its requests."""
        if self._stopping:
            return
        self._stopping, self._stopped_s = True, perf_counter()
        for slot in self._slots:
            slot.cancel_timer()
        self._later("end", min(STOP_DRAIN_S, self._end_s - self._stopped_s), self._done)
        self._done_if_idle()

    def _done_if_idle(self) -> None:
        if not any(self._busy(slot) for slot in self._slots):
            self._done()

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = perf_counter()
            for slot in self._slots:
                slot.cancel_timer()

    def resume(self) -> None:
        if self._paused_at is None or self._stopping:
            return
        paused_s, self._paused_at = perf_counter() - self._paused_at, None
        self._end_s += paused_s  # a duration counts running time
        self._later("end", self._end_s - perf_counter(), self._done)
        if self._rate is not None:
            self._reschedule()
            return
        for slot in self._slots:
            if not self._busy(slot):
                self._next(slot)

    def set_rate(self, rate: float) -> None:
        if self._rate is None:
            raise ValueError("rate of a closed-model run")
        self._rate = rate
        self._reschedule()

    def set_connections(
        self, connections: int, share_start: int = 0, share_of: int | None = None
    ) -> None:
        """``connections`` of the run's ``share_of``, from its ``share_start``-th."""
        self._share = (share_start, share_of or connections)
        self._resize(connections)

    # --- outcomes (from the connections) ---

    def completed(self, conn: LoadConnection, status: int, done_s: float) -> None:
        if conn.counted and done_s < self._end_s:
            tally = self._book.tally(done_s)
            micros = int((done_s - conn.sent_s) * 1e6)
            tally.latency_us[micros] = tally.latency_us.get(micros, 0) + 1
            if self._rate is not None:
                # A timer may fire up to a millisecond early: such a send was not delayed.
                corrected = int((done_s - min(conn.intended_s, conn.sent_s)) * 1e6)
                tally.corrected_us[corrected] = tally.corrected_us.get(corrected, 0) + 1
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            expect = self._expect
            if (status >= 400) if expect is None else (status not in expect):
                tally.bad_status += 1
        if not self._send_next_at_once(conn, done_s):
            self._after(conn.slot, conn)

    def _send_next_at_once(self, conn: LoadConnection, now_s: float) -> bool:
        """Closed model, the common case: the next request leaves from this very callback.

        The hot path of a closed run (measured: about a fifth more req/s than going through
        ``_after``); anything unusual (a closed connection, pause, stop, a slot to retire,
        the last of ``-n``, the end in sight) returns False and takes the general path.
        """
        if (
            self._rate is not None
            or self._stopping
            or self._paused_at is not None
            or conn.transport is None
            or conn.slot.retiring
            or now_s >= self._end_s
        ):
            return False
        counted = now_s >= self._count_from_s
        if counted and self._remaining is not None:
            if self._remaining == 0:
                return False
            self._remaining -= 1
        self.sent += 1
        conn.send(self._request, now_s, counted)
        return True

    def failed(self, conn: LoadConnection, kind: ErrorKind, _text: str) -> None:
        done_s = perf_counter()
        if conn.counted and done_s < self._end_s:
            self._book.tally(done_s).error(kind)
        self._after(conn.slot, conn)

    def dropped(self, conn: LoadConnection) -> None:
        """An idle connection closed: its slot connects again when it next sends."""
        if conn.slot.conn is conn:
            conn.slot.conn = None

    def resend(self, conn: LoadConnection) -> None:
        slot = conn.slot
        slot.conn = None
        self._connect(slot, conn.intended_s, conn.counted)

    # --- scheduling ---

    def _after(self, slot: Slot, conn: LoadConnection) -> None:
        if not conn.alive and slot.conn is conn:
            slot.conn = None
        if slot.retiring:
            self._drop_slot(slot)
        if self._stopping or self._remaining == 0:
            self._done_if_idle()  # the last answer of a stop's drain, or of -n
        else:
            self._next(slot)

    def _next(self, slot: Slot) -> None:
        if slot.retiring or self._stopping or self._paused_at is not None:
            return
        if self._rate is None:
            self._send(slot, perf_counter())
            return
        slot.intended_s += slot.interval_s
        wait_s = slot.intended_s - perf_counter()
        if wait_s > 0:
            slot.timer = self._loop.call_later(wait_s, self._due, slot)
        else:
            self._send(slot, slot.intended_s)

    def _due(self, slot: Slot) -> None:
        slot.timer = None
        self._send(slot, slot.intended_s)

    def _send(self, slot: Slot, intended_s: float) -> None:
        now_s = perf_counter()
        counted = now_s >= self._count_from_s  # sends during the warm-up are not
        if self._remaining is not None and counted:
            if self._remaining == 0:
                return
            self._remaining -= 1
        # A timer may fire a millisecond early, and an intended time is a sum of intervals:
        # rounding can put the send due at the end a hair before it (a 1,001st of 1,000).
        if max(now_s, intended_s) >= self._end_s - SAME_MOMENT_S:
            self._done()
            return
        self.sent += 1
        if self._rate is not None and now_s - intended_s > LATE_AFTER_S and counted:
            self._book.tally(now_s).late_sends += 1
        conn = slot.conn
        if conn is None or not conn.alive or conn.transport is None:
            self._connect(slot, intended_s, counted)
        else:
            conn.send(self._request, intended_s, counted)

    def _connect(self, slot: Slot, intended_s: float, counted: bool) -> None:
        slot.connecting = True
        task = self._loop.create_task(self._open(slot, intended_s, counted))
        task.add_done_callback(_retrieve)

    async def _open(self, slot: Slot, intended_s: float, counted: bool) -> None:
        conn = self._connection(self, slot)
        conn.counted = counted
        try:
            async with asyncio.timeout(self.plan.timeout_s):
                await self._loop.create_connection(
                    lambda: conn,
                    self._address,
                    self.plan.url.port,
                    family=self._family,
                    ssl=self._tls,
                    server_hostname=self.plan.url.host if self._tls is not None else None,
                )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            slot.connecting = False
            text = describe_error(exc) if str(exc) else f"timeout after {self.plan.timeout_s} s"
            done_s = perf_counter()
            if counted and done_s < self._end_s:
                self._book.tally(done_s).error(error_kind(text))
            conn.close()
            self._after(slot, conn)
            return
        slot.connecting = False
        slot.conn = conn
        if self._stopping or slot.retiring:
            conn.close()
            self._after(slot, conn)  # a stop's drain may have waited for this connection
            return
        conn.send(self._request, intended_s, counted)

    def _busy(self, slot: Slot) -> bool:
        conn = slot.conn
        return slot.connecting or (conn is not None and conn.in_flight)

    def _resize(self, connections: int, base_s: float | None = None) -> None:
        live = [slot for slot in self._slots if not slot.retiring]
        for slot in live[connections:]:
            self._retire(slot)
        added = [Slot(len(self._slots) + n) for n in range(connections - len(live))]
        self._slots.extend(added)
        if self._rate is not None:
            self._reschedule(base_s)
            return
        for slot in added:
            self._next(slot)

    def _retire(self, slot: Slot) -> None:
        slot.retiring = True
        slot.cancel_timer()
        if not self._busy(slot):
            self._drop_slot(slot)

    def _drop_slot(self, slot: Slot) -> None:
        if slot.conn is not None:
            slot.conn.close()
            slot.conn = None
        if slot in self._slots:
            self._slots.remove(slot)

    def _reschedule(self, base_s: float | None = None) -> None:
        """Spread the live slots' next sends over the rate again, from ``base_s`` (now).

        Slot ``i`` of this worker is connection ``share_start + i`` of the run's
        ``share_of``: every worker's sends fall on one even schedule, not in bursts.
        """
        live = [slot for slot in self._slots if not slot.retiring]
        if self._rate is None or self._paused_at is not None or not live:
            return
        first, total = self._share
        run_rate = self._rate * total / len(live)
        base_s = perf_counter() if base_s is None else base_s
        for position, slot in enumerate(live):
            slot.interval_s = len(live) / self._rate
            slot.intended_s = base_s + (first + position) / run_rate - slot.interval_s
            if slot.timer is not None or not self._busy(slot):
                slot.cancel_timer()
                self._next(slot)

    # --- seconds ---

    def _tick(self) -> None:
        now_s = perf_counter()
        if now_s >= self._end_s:
            self._done()
            return
        self._book.emit_through(self._book.second_of(now_s) - 1)
        self._later("tick", self._book.until_second_ends(now_s), self._tick)

    def _sweep(self) -> None:
        deadline_s = perf_counter() - self.plan.timeout_s
        text = f"timeout after {float(self.plan.timeout_s)} s"
        for slot in list(self._slots):
            conn = slot.conn
            if conn is not None and conn.in_flight and conn.sent_s < deadline_s:
                conn.timed_out(text)
        if not self._finished.done():  # a stop's drain too: its timeouts are answers
            self._later("sweep", SWEEP_EVERY_S, self._sweep)

    def _done(self) -> None:
        self._stopping = True
        if not self._finished.done():
            self._finished.set_result(None)


async def _sleep_until(at_s: float) -> None:
    """Sleep until ``perf_counter()`` reaches ``at_s``; uvloop's timers may wake a
    millisecond early, and a send before the start would not be counted."""
    early_s = at_s - perf_counter()
    while early_s > 0:
        await asyncio.sleep(early_s)
        early_s = at_s - perf_counter()


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
