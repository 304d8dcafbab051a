from __future__ import annotations

from collections.abc import Sequence

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


def _recorded(samples: Sequence[tuple[float, str | None]]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for latency_ms, error in samples:
        histogram.record(latency_ms, error)
    return histogram


SAMPLES: list[tuple[float, str | None]] = [
    (0.5 + (i * 7919 % 1000) / 37, None) for i in range(3000)
] + [
    (-1.0, "connection refused"),
    (-1.0, "timeout after 1.0 s"),
    (-1.0, "connection refused"),
]


def test_merged_parts_equal_one_histogram_of_every_sample() -> None:
    whole = _recorded(SAMPLES)
    merged = LatencyHistogram()
    for start in range(0, len(SAMPLES), 700):
        merged.merge(_recorded(SAMPLES[start : start + 700]))
    assert merged.stats() == whole.stats()


def test_payloads_round_trip_and_merge_exactly() -> None:
    merged = LatencyHistogram()
    for start in range(0, len(SAMPLES), 1000):
        part = _recorded(SAMPLES[start : start + 1000])
        extra = merged.add_payload(part.to_payload(through_seq=start))
        assert extra["through_seq"] == start
    assert merged.stats() == _recorded(SAMPLES).stats()


def test_errors_are_counted_by_kind_over_the_shared_list() -> None:
    stats = _recorded(SAMPLES).stats()
    assert stats.errors == 3
    assert stats.errors_by_kind["refused"] == 2
    assert stats.errors_by_kind["timeout"] == 1
    assert set(stats.errors_by_kind) == {
        "refused",
        "reset",
        "timeout",
        "dns",
        "tls",
        "protocol",
        "bad_status",
        "assertion",
        "target_not_allowed",
    }


def test_stddev_and_p99_9_follow_their_definitions() -> None:
    stats = summarize([1.0, 2.0, 3.0, 4.0] * 250 + [100.0])
    values = [1.0, 2.0, 3.0, 4.0] * 250 + [100.0]
    mean = sum(values) / len(values)
    stddev = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert stats.stddev_ms == pytest.approx(stddev, abs=1e-3)
    assert stats.p99_9_ms == pytest.approx(4.0, rel=1e-3)
    assert stats.max_ms == 100.0


def test_an_unknown_payload_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        LatencyHistogram().add_payload('{"format": 99}')


def test_no_percentile_passes_the_exact_maximum() -> None:
    histogram = LatencyHistogram()
    for latency_ms in (3.0, 3.1, 3.452):  # 3452 µs sits in an HDR bucket whose top is 3453
        histogram.record(latency_ms)
    stats = histogram.stats()
    assert stats.max_ms == 3.452
    assert stats.p99_ms == stats.p99_9_ms == 3.452
