"""The pipeline client's sending engine: ``requests`` POSTs to the receiver over
``connections`` keep-alive connections, on the load engine's connections.

Closed model, as the load engine's: each connection sends its next request as soon as the
last one is answered. A request is acknowledged by a 200 whose body holds ``"asyncAnswer"``
(the receiver has made it durable); its latency runs from the send to the end of that answer.

Nothing is sent twice: a request that failed (another answer, a cut or timed-out connection)
may or may not have reached the receiver, and sending it again could make it arrive twice.
So ``sent == acked + errors`` once :func:`send_requests` returns.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, cast

from latlab.measure.errors import ErrorKind
from latlab.measure.http_probe import describe_error
from latlab.measure.load.connection import LoadConnection, Slot
from latlab.measure.request import RequestSpec, Url
from latlab.measure.stats import LatencyHistogram

SWEEP_EVERY_S = 0.1  # timeouts are checked this often, as the load engine does
ACK_MARK = b'"asyncAnswer"'
KEPT_BODY_BYTES = 4096  # an acknowledgement is a few bytes; the rest of a long answer is not
MAX_RUN_ID_CHARS = 64  # what the receiver accepts
_HEADERS = (("Content-Type", "application/json"),)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class SendPlan:
    """What to send: ``requests`` requests to ``url`` (the receiver's ``/handler``) over
    ``connections`` connections, each asking for a delay of a whole number of
    ``delay_unit_s`` below ``delay_range`` (0: no delay)."""

    url: Url
    requests: int
    connections: int
    delay_range: float
    delay_unit_s: float
    run_id: str
    timeout_s: float = 10.0
    token: str | None = None  # sent as a bearer token: the receiver asks for the API's

    def __post_init__(self) -> None:
        if self.requests < 0:
            raise ValueError("requests must be 0 or more")
        if self.connections < 1:
            raise ValueError("connections must be 1 or more")
        if not 0 <= self.delay_range < math.inf:
            raise ValueError("delay_range must be a finite number, 0 or more")
        if not 0 < self.delay_unit_s < math.inf:
            raise ValueError("delay_unit_s must be a finite number above 0")
        if not 0 < self.timeout_s < math.inf:
            raise ValueError("timeout_s must be a finite number above 0")
        if not 0 < len(self.run_id) <= MAX_RUN_ID_CHARS:
            raise ValueError(f"run_id must have 1 to {MAX_RUN_ID_CHARS} characters")

    def delay_of(self, rng: random.Random) -> float:
        """A random whole number of units in ``[0, delay_range)``, in seconds."""
        units = rng.randrange(math.ceil(self.delay_range)) if self.delay_range > 0 else 0
        if self.delay_unit_s == 1:
            return units  # the JSON says 3, not 3.0, as the original client's
        return round(units * self.delay_unit_s, 9)  # 0.003, not 0.0030000000000000001

    def encode_request(self, rng: random.Random) -> bytes:
        """The bytes of one request: a new id, a new delay."""
        request = {"id": str(uuid.uuid4()), "delay": self.delay_of(rng), "run_id": self.run_id}
        body = json.dumps({"request": request}, separators=(",", ":")).encode()
        headers = (
            _HEADERS if not self.token else (*_HEADERS, ("Authorization", f"Bearer {self.token}"))
        )
        return RequestSpec("POST", headers, body).encode(self.url, keep_alive=True)


@dataclass
class SendResult:
    """The outcome of a send. ``ack`` holds the acknowledgement latencies, and counts the
    failed requests by kind (without a latency)."""

    run_id: str
    sent: int = 0
    ack: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def errors(self) -> int:
        return self.ack.errors

    @property
    def acked(self) -> int:
        return self.ack.count - self.ack.errors

    @property
    def errors_by_kind(self) -> dict[ErrorKind, int]:
        return {kind: count for kind, count in self.ack.errors_by_kind.items() if count}

    def to_json(self) -> dict[str, Any]:
        stats = self.ack.stats()
        return {
            "run_id": self.run_id,
            "sent": self.sent,
            "acked": self.acked,
            "errors": self.errors,
            "ack_latency_ms": {"p50": stats.p50_ms, "p99": stats.p99_ms, "max": stats.max_ms},
        }


async def send_requests(
    plan: SendPlan,
    address: tuple[int, str],
    progress: Progress | None = None,
    *,
    rng: random.Random | None = None,
    tls: ssl.SSLContext | None = None,
) -> SendResult:
    """Send ``plan`` to ``address`` (``(family, address)``, as ``resolve_target`` gives it)
    on the running loop; return once every request has an outcome.

    ``progress`` gets the number of requests with an outcome after each one (it must not
    raise); ``rng`` draws the delays; ``tls`` is used for an https URL (default: verified).
    """
    if tls is None and plan.url.scheme == "https":
        tls = ssl.create_default_context()
    sender = _Sender(plan, address, progress, rng or random.Random(), tls)
    return await sender.run()


class _AckConnection(LoadConnection):
    """A load connection that keeps the start of each answer's body: the ack is in it."""

    def __init__(self, sender: _Sender, slot: Slot) -> None:
        self.body = bytearray()
        super().__init__(sender, slot)

    def on_message_begin(self) -> None:
        self.body.clear()  # an interim (100) answer, or one to nothing, leaves no trace

    def on_body(self, body: bytes) -> None:
        room = KEPT_BODY_BYTES - len(self.body)
        if room > 0:
            self.body += body[:room]


class _Sender:
    """One send on the running loop; the connections report their outcomes to it."""

    def __init__(
        self,
        plan: SendPlan,
        address: tuple[int, str],
        progress: Progress | None,
        rng: random.Random,
        tls: ssl.SSLContext | None,
    ) -> None:
        self._plan = plan
        self._family, self._host = address
        self._progress = progress
        self._rng = rng
        self._tls = tls
        self._loop = asyncio.get_running_loop()
        self._unsent = plan.requests
        self._outcomes = 0
        self._slots = [Slot(index) for index in range(min(plan.connections, plan.requests))]
        self._opening: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self.result = SendResult(plan.run_id)

    async def run(self) -> SendResult:
        if self._plan.requests == 0:
            return self.result
        self._sweeper = self._loop.call_later(SWEEP_EVERY_S, self._sweep)
        try:
            for slot in self._slots:
                self._next(slot)
            await self._finished
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()
            for task in list(self._opening):
                task.cancel()
            for slot in self._slots:
                if slot.conn is not None:
                    slot.conn.close()
        return self.result

    # --- outcomes (from the connections) ---

    def completed(self, conn: LoadConnection, status: int, done_s: float) -> None:
        body = cast(_AckConnection, conn).body
        if status == 200 and ACK_MARK in body:
            self.result.ack.record((done_s - conn.sent_s) * 1000)
        elif status == 200:
            self.result.ack.record(0.0, error="200 answer without an acknowledgement")
        else:
            self.result.ack.record(0.0, error=f"bad status {status}")
        self._outcome(conn.slot)

    def failed(self, conn: LoadConnection, _kind: ErrorKind, text: str) -> None:
        self.result.ack.record(0.0, error=text)
        self._outcome(conn.slot)

    def dropped(self, conn: LoadConnection) -> None:
        """An idle connection closed: its slot connects again for its next request."""
        if conn.slot.conn is conn:
            conn.slot.conn = None

    def resend(self, conn: LoadConnection) -> None:
        # The server closed the kept-alive connection as the request went out. It most
        # likely never read it, but a POST is not sent again on a guess: an error.
        self.result.ack.record(0.0, error="server closed connection")
        self._outcome(conn.slot)

    def _outcome(self, slot: Slot) -> None:
        if slot.conn is not None and not slot.conn.alive:
            slot.conn = None
        self._outcomes += 1
        if self._progress is not None:
            self._progress(self._outcomes)
        if self._outcomes == self._plan.requests:
            if not self._finished.done():
                self._finished.set_result(None)
        else:
            self._next(slot)

    # --- sending ---

    def _next(self, slot: Slot) -> None:
        if self._unsent == 0:
            return
        self._unsent -= 1
        self.result.sent += 1
        request = self._plan.encode_request(self._rng)
        conn = slot.conn
        if conn is not None and conn.transport is not None:
            conn.send(request, perf_counter(), True)
        else:
            task = self._loop.create_task(self._open(slot, request))
            self._opening.add(task)
            task.add_done_callback(self._opened)

    async def _open(self, slot: Slot, request: bytes) -> None:
        conn = _AckConnection(self, slot)
        slot.connecting = True
        timeout_s = self._plan.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await self._loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._plan.url.port,
                    family=self._family,
                    ssl=self._tls,
                    server_hostname=self._plan.url.host if self._tls is not None else None,
                )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            slot.connecting = False
            conn.close()
            text = describe_error(exc) if str(exc) else f"timeout after {timeout_s:g} s"
            self.result.ack.record(0.0, error=text)  # never sent: surely not received
            self._outcome(slot)
            return
        slot.connecting = False
        slot.conn = conn
        conn.send(request, perf_counter(), True)

    def _opened(self, task: asyncio.Task[None]) -> None:
        """A connect that failed otherwise than a connect fails ends the send with its error
        (its request would never have an outcome)."""
        self._opening.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self._finished.done():
            self._finished.set_exception(exc)

    def _sweep(self) -> None:
        deadline_s = perf_counter() - self._plan.timeout_s
        text = f"timeout after {self._plan.timeout_s:g} s"
        for slot in self._slots:
            conn = slot.conn
            if conn is not None and conn.in_flight and conn.sent_s < deadline_s:
                conn.timed_out(text)  # closes it: its slot connects again for the next one
        self._sweeper = self._loop.call_later(SWEEP_EVERY_S, self._sweep)
