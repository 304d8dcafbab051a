"""Latency summaries from an HDR histogram: fixed memory however many samples."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

# Microsecond resolution up to one hour, three significant digits (0.1 % error at most).
_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_SIGNIFICANT_DIGITS = 3


@dataclass(frozen=True, slots=True)
class LatencyStats:
    count: int
    errors: int
    min_ms: float | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


class LatencyHistogram:
    """Records latencies in ms; exact min, max and mean, percentiles from the histogram."""

    def __init__(self) -> None:
        self._histogram = HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIGNIFICANT_DIGITS)
        self.count = 0
        self.errors = 0
        self._sum_ms = 0.0
        self._min_ms = float("inf")
        self._max_ms = 0.0

    def record(self, latency_ms: float) -> None:
        """Record one probe; a negative latency is a failed probe."""
        self.count += 1
        if latency_ms < 0:
            self.errors += 1
            return
        micros = min(max(round(latency_ms * 1000), _LOWEST_US), _HIGHEST_US)
        self._histogram.record_value(micros)
        self._sum_ms += latency_ms
        self._min_ms = min(self._min_ms, latency_ms)
        self._max_ms = max(self._max_ms, latency_ms)

    def percentile_ms(self, percentile: float) -> float:
        return float(self._histogram.get_value_at_percentile(percentile)) / 1000

    def stats(self) -> LatencyStats:
        ok = self.count - self.errors
        if ok == 0:
            return LatencyStats(count=self.count, errors=self.errors)
        # Rounded to the microsecond, the resolution the percentiles have.
        return LatencyStats(
            count=self.count,
            errors=self.errors,
            min_ms=round(self._min_ms, 3),
            mean_ms=round(self._sum_ms / ok, 3),
            p50_ms=self.percentile_ms(50),
            p90_ms=self.percentile_ms(90),
            p99_ms=self.percentile_ms(99),
            max_ms=round(self._max_ms, 3),
        )


def summarize(latencies_ms: Iterable[float]) -> LatencyStats:
    histogram = LatencyHistogram()
    for latency_ms in latencies_ms:
        histogram.record(latency_ms)
    return histogram.stats()
