from __future__ import annotations

import pytest

from latlab.measure.stats import LatencyHistogram, summarize


def test_percentiles_within_a_thousandth() -> None:
    stats = summarize(float(ms) for ms in range(1, 1001))
    assert (stats.count, stats.errors, stats.min_ms, stats.max_ms) == (1000, 0, 1.0, 1000.0)
    assert stats.mean_ms == pytest.approx(500.5)
    assert stats.p50_ms == pytest.approx(500, rel=1e-3)
    assert stats.p90_ms == pytest.approx(900, rel=1e-3)
    assert stats.p99_ms == pytest.approx(990, rel=1e-3)


def test_failed_probes_are_errors_not_latencies() -> None:
    stats = summarize([-1.0, 2.0, -1.0])
    assert (stats.count, stats.errors, stats.min_ms, stats.max_ms) == (3, 2, 2.0, 2.0)


def test_no_successful_probe_means_no_latency_figures() -> None:
    stats = summarize([-1.0])
    assert (stats.count, stats.errors, stats.p50_ms, stats.mean_ms) == (1, 1, None, None)


def test_values_beyond_the_range_are_clamped_not_lost() -> None:
    histogram = LatencyHistogram()
    histogram.record(0.0001)
    histogram.record(10 * 3_600_000.0)
    stats = histogram.stats()
    assert stats.count == 2
    assert stats.max_ms == 36_000_000.0  # exact figures keep the real value


def test_min_mean_and_max_are_rounded_to_the_microsecond_like_the_percentiles() -> None:
    stats = summarize([1.23456789, 2.0000004, 3.1111119])
    assert (stats.min_ms, stats.max_ms) == (1.235, 3.111)
    assert stats.mean_ms == 2.115
