"""Calibration targets for measuring LatLab itself: a fixed delay, any status, any size.

``/delay?ms=`` answers after a server-side sleep, so a probe's result minus the delay is
the overhead of the path; ``/status/{code}`` answers the status asked for (5xx included:
this port is not the control API); ``/bytes/{n}`` answers an ``n``-byte body.
"""

from __future__ import annotations

import asyncio
import math
import time
from http import HTTPStatus
from urllib.parse import parse_qs

from latlab.serving.routes import Answer
from latlab.serving.wire import Request, Response, detail, encode_response, json_response

MAX_DELAY_MS = 30_000.0
MAX_BYTES = 10 * 1024 * 1024
STATUS_PREFIX = b"/status/"
BYTES_PREFIX = b"/bytes/"
SIZES_KEPT = 4


def _parse_delay_ms(query: bytes) -> float:
    values = parse_qs(query.decode("latin-1")).get("ms", [])
    if len(values) != 1:
        raise ValueError("give the delay once, as ?ms=<milliseconds>")
    try:
        delay_ms = float(values[0])
    except ValueError:
        raise ValueError(f"ms must be a number, not {values[0]!r}") from None
    if not (math.isfinite(delay_ms) and 0 <= delay_ms <= MAX_DELAY_MS):
        raise ValueError(f"ms must be between 0 and {MAX_DELAY_MS:.0f}")
    return delay_ms


async def _delayed(delay_ms: float, deadline: float) -> Response:
    # uvloop's timers count whole milliseconds from the loop's last look at the clock, so a
    # sleep may end up to 1 ms early: a calibration target sleeps again for the rest.
    while (left_s := deadline - time.perf_counter()) > 0:  # noqa: ASYNC110 - a deadline
        await asyncio.sleep(left_s)
    return json_response(HTTPStatus.OK, {"delayed_ms": delay_ms})


def delay(request: Request) -> Answer:
    try:
        delay_ms = _parse_delay_ms(request.query)
    except ValueError as exc:
        return detail(HTTPStatus.BAD_REQUEST, str(exc))
    # The delay counts from now, the request's dispatch, not from the task's first step.
    return _delayed(delay_ms, time.perf_counter() + delay_ms / 1000.0)


def _path_int(path: bytes, prefix: bytes) -> int | None:
    text = path[len(prefix) :]
    # isdigit() on bytes is ASCII-only: no signs, spaces or Unicode digits slip through.
    return int(text) if text.isdigit() and len(text) <= 9 else None


def _status_response(code: int) -> Response:
    if code < 200:
        # A 1xx is an interim answer: it is sent, then a final 200 ends the exchange.
        return encode_response(200, "application/json", b'{"status":%d}' % code, interim=code)
    return encode_response(code, "application/json", b'{"status":%d}' % code)


class Calibration:
    """Handlers of ``/status/{code}`` and ``/bytes/{n}``; status answers are pre-built."""

    def __init__(self) -> None:
        # 101 would announce a protocol switch that never happens.
        codes = [c for c in range(100, 600) if c != HTTPStatus.SWITCHING_PROTOCOLS]
        self._statuses = {code: _status_response(code) for code in codes}
        self._sized: dict[int, Response] = {}

    def status(self, request: Request) -> Response:
        code = _path_int(request.path, STATUS_PREFIX)
        if code is None or code not in self._statuses:
            return detail(HTTPStatus.BAD_REQUEST, "the status must be 100 to 599, except 101")
        return self._statuses[code]

    def bytes(self, request: Request) -> Response:
        size = _path_int(request.path, BYTES_PREFIX)
        if size is None or size > MAX_BYTES:
            return detail(HTTPStatus.BAD_REQUEST, f"the size must be 0 to {MAX_BYTES} bytes")
        # Answers of the last few sizes are kept: the same size asked again (a load test, a
        # pipelining client) shares one body rather than a new 10 MiB each.
        response = self._sized.pop(size, None)
        if response is None:
            response = encode_response(HTTPStatus.OK, "application/octet-stream", bytes(size))
            if len(self._sized) >= SIZES_KEPT:
                del self._sized[next(iter(self._sized))]
        self._sized[size] = response  # the most recent last
        return response
