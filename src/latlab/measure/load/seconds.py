"""One second of a load run: tallied cheaply by a worker, then mergeable and storable.

A worker bumps plain dict counts per microsecond value on the hot path
(:class:`SecondTally`); once the second is over it becomes a :class:`SecondStats`, HDR
histograms plus counters, which is what crosses the process boundary, merges across workers
(bucket for bucket, exactly) and is stored per second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from latlab.measure.errors import ErrorKind
from latlab.measure.stats import LatencyHistogram

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class SecondTally:
    """What one worker saw finish within one second; dicts, so a sample costs a bump."""

    __slots__ = (
        "bad_status",
        "corrected_us",
        "errors",
        "late_sends",
        "latency_us",
        "missed_sends",
        "statuses",
    )

    def __init__(self) -> None:
        self.latency_us: dict[int, int] = {}
        self.corrected_us: dict[int, int] = {}
        self.errors: dict[ErrorKind, int] = {}
        self.statuses: dict[int, int] = {}
        self.bad_status = 0
        self.late_sends = 0
        self.missed_sends = 0

    def error(self, kind: ErrorKind) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def stats(self, second: int, *, open_model: bool, span_s: float = 1.0) -> SecondStats:
        service = LatencyHistogram()
        service.record_counts(self.latency_us)
        service.record_errors(self.errors)
        corrected = None
        if open_model:
            corrected = LatencyHistogram()
            corrected.record_counts(self.corrected_us)
            corrected.record_errors(self.errors)
        status: Counter[str] = Counter()
        for code, count in self.statuses.items():
            status[_status_class(code)] += count
        return SecondStats(
            second,
            service,
            corrected,
            status,
            self.bad_status,
            self.late_sends,
            self.missed_sends,
            span_s,
        )


class SecondBook:
    """One worker's open seconds: a tally per second, handed on in order once over."""

    def __init__(self, emit: Callable[[SecondStats], None], *, open_model: bool) -> None:
        self._emit = emit
        self._open_model = open_model
        self._tallies: dict[int, SecondTally] = {}
        self._emitted = 0  # seconds handed on so far
        self._last_second, self._last_tally = -1, SecondTally()
        self.count_from_s = 0.0  # when second 0 began

    def second_of(self, at_s: float) -> int:
        return int(at_s - self.count_from_s)

    def tally(self, at_s: float) -> SecondTally:
        second = int(at_s - self.count_from_s)
        if second == self._last_second:  # nearly always: one lookup saved per request
            return self._last_tally
        tally = self._tallies.get(second)
        if tally is None:
            tally = self._tallies[second] = SecondTally()
        self._last_second, self._last_tally = second, tally
        return tally

    def until_second_ends(self, now_s: float) -> float:
        """Time from ``now_s`` until the second due next ends."""
        return max(0.0, self.count_from_s + self._emitted + 1 - now_s)

    def emit_through(self, last_second: int, last_span_s: float = 1.0) -> None:
        """Hand on every second up to ``last_second`` (which lasted ``last_span_s``), empty
        ones too."""
        while self._emitted <= last_second:
            tally = self._tallies.pop(self._emitted, None) or SecondTally()
            if self._emitted == self._last_second:
                self._last_second = -1  # handed on: a late sample opens a fresh tally
            span_s = last_span_s if self._emitted == last_second else 1.0
            self._emit(tally.stats(self._emitted, open_model=self._open_model, span_s=span_s))
            self._emitted += 1


def _status_class(code: int) -> str:
    return STATUS_CLASSES[code // 100 - 1] if 100 <= code <= 599 else "other"


@dataclass(slots=True)
class SecondStats:
    """A second (or, merged, any span) of a run: ``service`` holds every finished request
    (transport errors as its errors), ``corrected`` the same from the intended send times
    (open model only)."""

    second: int
    service: LatencyHistogram = field(default_factory=LatencyHistogram)
    corrected: LatencyHistogram | None = None
    status: Counter[str] = field(default_factory=Counter)
    bad_status: int = 0
    late_sends: int = 0
    missed_sends: int = 0  # sends due before the run ended that never left
    span_s: float = 1.0  # how long this second lasted: less for a run's last one

    @property
    def requests(self) -> int:
        return self.service.count

    @property
    def errors(self) -> int:
        """Transport errors plus responses with an unexpected status."""
        return self.service.errors + self.bad_status

    def merge(self, other: SecondStats) -> None:
        self.service.merge(other.service)
        if other.corrected is not None:
            if self.corrected is None:
                self.corrected = LatencyHistogram()
            self.corrected.merge(other.corrected)
        self.status.update(other.status)
        self.bad_status += other.bad_status
        self.late_sends += other.late_sends
        self.missed_sends += other.missed_sends
        self.span_s = max(self.span_s, other.span_s) if self.second >= 0 else self.span_s

    def to_payload(self, **extra: Any) -> str:
        """A JSON text that :meth:`from_payload` reads back; ``extra`` keys ride along."""
        corrected = None if self.corrected is None else self.corrected.to_payload()
        return self.service.to_payload(
            **extra,
            second=self.second,
            status=dict(self.status),
            bad_status=self.bad_status,
            late_sends=self.late_sends,
            missed_sends=self.missed_sends,
            span_s=self.span_s,
            corrected=corrected,
        )

    @classmethod
    def from_payload(cls, payload: str) -> SecondStats:
        service = LatencyHistogram()
        document: dict[str, Any] = service.add_payload(payload)
        corrected = None
        if document.get("corrected") is not None:
            corrected = LatencyHistogram()
            corrected.add_payload(document["corrected"])
        return cls(
            second=int(document["second"]),
            service=service,
            corrected=corrected,
            status=Counter({str(k): int(v) for k, v in document["status"].items()}),
            bad_status=int(document["bad_status"]),
            late_sends=int(document["late_sends"]),
            missed_sends=int(document.get("missed_sends", 0)),
            span_s=float(document.get("span_s", 1.0)),
        )

    def row(self) -> dict[str, Any]:
        """The per-second row of the CSV and of ``/seconds``."""
        stats = self.service.stats()
        return {
            "second": self.second,
            "requests": self.requests,
            "errors": self.errors,
            "rps": self.requests if self.span_s >= 1 else round(self.requests / self.span_s, 1),
            "p50_ms": stats.p50_ms,
            "p90_ms": stats.p90_ms,
            "p99_ms": stats.p99_ms,
            "max_ms": stats.max_ms,
        }
