"""A run's figures from its merged seconds: the totals, the per-second rows, the summary.

:class:`RunTotals` is fed every merged second in order (from the pool, or read back from the
store) and keeps one merged :class:`SecondStats` plus a small row per second, never samples.
:meth:`RunTotals.summary` gives the keys of ``latlab load --json`` and of the API.
"""

from __future__ import annotations

from typing import Any

from latlab.measure.errors import ERROR_KINDS
from latlab.measure.load.seconds import STATUS_CLASSES, SecondStats
from latlab.measure.stats import LatencyHistogram, LatencyStats

CSV_COLUMNS = ("second", "requests", "errors", "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")


def latency_summary(stats: LatencyStats) -> dict[str, float | None]:
    return {
        "min": stats.min_ms,
        "mean": stats.mean_ms,
        "p50": stats.p50_ms,
        "p90": stats.p90_ms,
        "p99": stats.p99_ms,
        "p99_9": stats.p99_9_ms,
        "max": stats.max_ms,
    }


class RunTotals:
    def __init__(self, *, open_model: bool) -> None:
        self.open_model = open_model
        self.total = SecondStats(-1, corrected=LatencyHistogram() if open_model else None)
        self.rows: list[dict[str, Any]] = []

    @property
    def requests(self) -> int:
        return self.total.requests

    @property
    def errors(self) -> int:
        return self.total.errors

    def p50_p99_ms(self) -> tuple[float | None, float | None]:
        stats = self.total.service.stats()
        return stats.p50_ms, stats.p99_ms

    def add(self, second: SecondStats) -> dict[str, Any]:
        """Count one merged second (they come in order); return its row."""
        self.total.merge(second)
        row = second.row()
        self.rows.append(row)
        return row

    def summary(self, duration_s: float) -> dict[str, Any]:
        """Every figure of the run; ``duration_s`` is the time it counted requests for."""
        service = self.total.service.stats()
        corrected = self.total.corrected
        errors_by_kind = dict(service.errors_by_kind)
        errors_by_kind["bad_status"] = errors_by_kind.get("bad_status", 0) + self.total.bad_status
        return {
            "requests": self.requests,
            "errors": self.errors,
            "duration_s": round(duration_s, 3),
            "rps": round(self.requests / duration_s, 1) if duration_s > 0 else 0.0,
            "latency_ms": latency_summary(service),
            "corrected_latency_ms": (
                None if corrected is None else latency_summary(corrected.stats())
            ),
            "percentiles": self.total.service.percentile_distribution(),
            "status": {name: self.total.status[name] for name in STATUS_CLASSES},
            "errors_by_kind": {kind: errors_by_kind.get(kind, 0) for kind in ERROR_KINDS},
            "late_sends": self.total.late_sends if self.open_model else None,
            "missed_sends": self.total.missed_sends if self.open_model else None,
            "corrected_percentiles": (
                None if corrected is None else corrected.percentile_distribution()
            ),
        }
