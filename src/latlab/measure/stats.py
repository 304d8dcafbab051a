"""Latency summaries from an HDR histogram: fixed memory however many samples, mergeable.

Exact figures (count, errors by kind, min, max, mean, standard deviation) are kept as
integers in microseconds, so merging two histograms gives bit for bit what recording every
sample into one would: stored per-minute histograms and a full recount agree exactly.
Percentiles come from the HDR histogram (three significant digits).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from latlab.measure.errors import ERROR_KINDS, ErrorKind, error_kind

# Microsecond resolution up to one hour, three significant digits (0.1 % error at most).
_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_SIGNIFICANT_DIGITS = 3
_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class LatencyStats:
    count: int
    errors: int
    min_ms: float | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p99_9_ms: float | None = None
    max_ms: float | None = None
    stddev_ms: float | None = None
    errors_by_kind: dict[ErrorKind, int] = field(default_factory=dict)


class LatencyHistogram:
    """Records latencies in ms; exact min, max, mean and stddev, percentiles from HDR."""

    def __init__(self) -> None:
        self._histogram = HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIGNIFICANT_DIGITS)
        self.count = 0
        self.errors_by_kind: Counter[ErrorKind] = Counter()
        self._sum_us = 0
        self._sum_squares_us = 0
        self._min_us: int | None = None
        self._max_us: int | None = None

    @property
    def errors(self) -> int:
        return self.count - int(self._histogram.get_total_count())

    def record(self, latency_ms: float, error: str | None = None) -> None:
        """Record one probe; a negative latency (or an error) is a failed one."""
        self.count += 1
        if error is not None or latency_ms < 0:
            self.errors_by_kind[error_kind(error or "")] += 1
            return
        micros = round(latency_ms * 1000)
        self._histogram.record_value(min(max(micros, _LOWEST_US), _HIGHEST_US))
        self._sum_us += micros
        self._sum_squares_us += micros * micros
        self._min_us = micros if self._min_us is None else min(self._min_us, micros)
        self._max_us = micros if self._max_us is None else max(self._max_us, micros)

    def record_counts(self, counts_us: Mapping[int, int]) -> None:
        """Record ``count`` samples of each latency in µs: one HDR update per distinct value,
        as the load engine tallies its samples (a dict bump costs a sixteenth of HDR's)."""
        for micros, count in counts_us.items():
            self._histogram.record_value(min(max(micros, _LOWEST_US), _HIGHEST_US), count)
            self._sum_us += micros * count
            self._sum_squares_us += micros * micros * count
            self.count += count
        if counts_us:
            low, high = min(counts_us), max(counts_us)
            self._min_us = low if self._min_us is None else min(self._min_us, low)
            self._max_us = high if self._max_us is None else max(self._max_us, high)

    def record_errors(self, errors: Mapping[ErrorKind, int]) -> None:
        """Count failed requests (no latency) by kind."""
        self.errors_by_kind.update(errors)
        self.count += sum(errors.values())

    def percentile_distribution(self) -> list[dict[str, float]]:
        """The HDR percentile distribution wrk2 ``--latency`` prints: value (ms), percentile,
        total count, one row per HDR iteration step (5 ticks per half distance)."""
        rows: list[dict[str, float]] = []
        if self._histogram.get_total_count() == 0:
            return rows
        for item in self._histogram.get_percentile_iterator(5):
            rows.append(
                {
                    "value_ms": item.value_iterated_to / 1000,
                    "percentile": round(item.percentile_level_iterated_to / 100, 9),
                    "total_count": item.total_count_to_this_value,
                }
            )
        return rows

    def bucket_counts(self) -> dict[int, int]:
        """Every HDR bucket that holds a sample: its value (µs) to its count. Two histograms
        with equal buckets give equal percentiles."""
        return {
            item.value_iterated_to: item.count_at_value_iterated_to
            for item in self._histogram.get_recorded_iterator()
        }

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s samples, as if each had been recorded here."""
        self._histogram.add(other._histogram)
        self._merge_exact(other.count, other.errors_by_kind, other._exact())

    def _exact(self) -> tuple[int, int, int | None, int | None]:
        return self._sum_us, self._sum_squares_us, self._min_us, self._max_us

    def _merge_exact(
        self,
        count: int,
        errors: Counter[ErrorKind],
        exact: tuple[int, int, int | None, int | None],
    ) -> None:
        sum_us, sum_squares_us, min_us, max_us = exact
        self.count += count
        self.errors_by_kind.update(errors)
        self._sum_us += sum_us
        self._sum_squares_us += sum_squares_us
        if min_us is not None:
            self._min_us = min_us if self._min_us is None else min(self._min_us, min_us)
        if max_us is not None:
            self._max_us = max_us if self._max_us is None else max(self._max_us, max_us)

    def stats(self) -> LatencyStats:
        errors = {kind: self.errors_by_kind[kind] for kind in ERROR_KINDS}
        ok = self._histogram.get_total_count()
        if ok == 0 or self._min_us is None or self._max_us is None:
            return LatencyStats(count=self.count, errors=self.errors, errors_by_kind=errors)
        percentiles = self._histogram.get_percentile_to_value_dict(list(_PERCENTILES))
        # An HDR value is its bucket's top, which may pass the exact maximum by up to 0.1 %.
        p50, p90, p99, p99_9 = (
            min(float(percentiles[p]), self._max_us) / 1000 for p in _PERCENTILES
        )
        variance_us2 = (ok * self._sum_squares_us - self._sum_us**2) / (ok * ok)
        return LatencyStats(
            count=self.count,
            errors=self.errors,
            min_ms=self._min_us / 1000,
            mean_ms=round(self._sum_us / ok / 1000, 3),
            p50_ms=p50,
            p90_ms=p90,
            p99_ms=p99,
            p99_9_ms=p99_9,
            max_ms=self._max_us / 1000,
            stddev_ms=round(math.sqrt(max(variance_us2, 0.0)) / 1000, 3),
            errors_by_kind=errors,
        )

    def to_payload(self, **extra: Any) -> str:
        """A JSON text that :meth:`from_payload` reads back; ``extra`` keys ride along."""
        document = {
            "format": _FORMAT,
            "count": self.count,
            "errors_by_kind": dict(self.errors_by_kind),
            "exact_us": list(self._exact()),
            "hdr": self._histogram.encode().decode("ascii"),
            **extra,
        }
        return json.dumps(document, separators=(",", ":"))

    def add_payload(self, payload: str) -> dict[str, Any]:
        """Merge a stored :meth:`to_payload` text; return it parsed (for its extra keys)."""
        document: dict[str, Any] = json.loads(payload)
        if document.get("format") != _FORMAT:
            raise ValueError(f"unknown histogram format {document.get('format')!r}")
        self._histogram.decode_and_add(document["hdr"].encode("ascii"))
        sum_us, sum_squares_us, min_us, max_us = document["exact_us"]
        self._merge_exact(
            document["count"],
            Counter(document["errors_by_kind"]),
            (sum_us, sum_squares_us, min_us, max_us),
        )
        return document


def summarize(latencies_ms: Iterable[float]) -> LatencyStats:
    histogram = LatencyHistogram()
    for latency_ms in latencies_ms:
        histogram.record(latency_ms)
    return histogram.stats()
