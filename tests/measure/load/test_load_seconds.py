"""Seconds of a run: cheap tallies become exact, mergeable, storable stats; plans split exactly."""

from __future__ import annotations

import random
import resource
from typing import Any

import pytest

from latlab.measure.load.plan import (
    LoadLimits,
    LoadPlan,
    PlanError,
    parse_duration,
    parse_expect_status,
    split,
)
from latlab.measure.load.seconds import SecondStats, SecondTally
from latlab.measure.request import parse_url
from latlab.measure.stats import LatencyHistogram

URL = parse_url("http://127.0.0.1:8008/sum")


def tally_of(latencies_us: list[int], errors: int = 0) -> SecondTally:
    tally = SecondTally()
    for micros in latencies_us:
        tally.latency_us[micros] = tally.latency_us.get(micros, 0) + 1
        tally.corrected_us[micros * 2] = tally.corrected_us.get(micros * 2, 0) + 1
        tally.statuses[200] = tally.statuses.get(200, 0) + 1
    for _ in range(errors):
        tally.error("reset")
    return tally


def test_merged_seconds_equal_one_histogram_of_every_request_bucket_for_bucket() -> None:
    rng = random.Random(7)
    samples = [rng.randrange(50, 2_000_000) for _ in range(5000)]
    first = tally_of(samples[:2000], errors=3).stats(4, open_model=True)
    second = tally_of(samples[2000:], errors=2).stats(4, open_model=True)
    first.merge(SecondStats.from_payload(second.to_payload()))

    whole = LatencyHistogram()
    whole.record_counts({micros: samples.count(micros) for micros in set(samples)})
    whole.record_errors({"reset": 5})
    assert first.service.stats() == whole.stats()
    assert first.service.percentile_distribution() == whole.percentile_distribution()
    assert first.requests == 5005
    assert first.errors == 5
    assert first.status["2xx"] == 5000
    assert first.corrected is not None
    assert first.corrected.stats().max_ms == max(samples) * 2 / 1000


def test_a_payload_round_trip_keeps_every_field() -> None:
    tally = tally_of([100, 200, 300])
    tally.bad_status, tally.late_sends = 1, 2
    stats = tally.stats(9, open_model=False)
    again = SecondStats.from_payload(stats.to_payload())
    assert (again.second, again.bad_status, again.late_sends) == (9, 1, 2)
    assert again.corrected is None
    assert (
        again.row()
        == stats.row()
        == {
            "second": 9,
            "requests": 3,
            "errors": 1,
            "rps": 3,
            "p50_ms": 0.2,
            "p90_ms": 0.3,
            "p99_ms": 0.3,
            "max_ms": 0.3,
        }
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30), ("2m", 120), ("1h", 3600), ("1.5", 1.5), (7, 7)],
)
def test_durations_take_units_and_a_bare_number_is_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1s", "0", "5 days", "1e3", "inf", "nan"])
def test_bad_durations_are_refused_naming_the_option(text: str) -> None:
    with pytest.raises(PlanError, match=r"^warmup"):
        parse_duration(text, "warmup")


def test_expected_statuses_take_codes_and_classes() -> None:
    assert parse_expect_status("200, 3xx") == frozenset({200, *range(300, 400)})
    with pytest.raises(PlanError, match="expect-status"):
        parse_expect_status("2xx,abc")


def test_a_split_keeps_totals_exact_and_starts_no_idle_worker() -> None:
    plan = LoadPlan(URL, connections=7, requests=10_001, duration_s=None, rate=700.0, workers=3)
    shares = split(plan)
    assert [share.connections for share in shares] == [3, 2, 2]
    assert sum(share.requests or 0 for share in shares) == 10_001
    assert sum(share.rate or 0 for share in shares) == pytest.approx(700.0)
    assert len(split(LoadPlan(URL, connections=2, workers=8))) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"connections": 0}, "connections"),
        ({"requests": 5}, "not both"),
        ({"duration_s": None}, "either"),
        ({"rate": 0.0}, "rate"),
        ({"rate": 1e-300}, "at least 0.001"),  # the schedule's times would be meaningless
        ({"rate": float("inf")}, "finite"),
        ({"timeout_s": 0.0}, "timeout"),
    ],
)
def test_a_plan_that_cannot_run_is_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        LoadPlan(URL, **options)  # type: ignore[arg-type]


def test_limits_name_the_option_past_its_bound() -> None:
    limits = LoadLimits(max_connections=10, max_rate=100, max_duration_s=60, max_workers=2)
    limits.check(LoadPlan(URL, connections=10, rate=100, duration_s=60, workers=2))
    too_much: list[tuple[dict[str, Any], str]] = [
        ({"connections": 11}, "connections"),
        ({"rate": 101.0}, "rate"),
        ({"duration_s": 61.0}, "duration"),
        ({"workers": 3}, "workers"),
    ]
    for options, name in too_much:
        with pytest.raises(PlanError, match=f"^{name} must be at most .*LATLAB_LOAD_MAX_"):
            limits.check(LoadPlan(URL, **{"connections": 10, **options}))


def test_limit_errors_name_the_setting_to_change() -> None:
    limits = LoadLimits(max_connections=10)
    with pytest.raises(PlanError, match=r"\(LATLAB_LOAD_MAX_CONNECTIONS\)"):
        limits.check(LoadPlan(URL, connections=11))


def test_more_connections_per_worker_than_files_a_process_may_open_are_refused() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard != resource.RLIM_INFINITY
    too_many = LoadPlan(URL, connections=hard, workers=1)
    with pytest.raises(PlanError, match=r"^connections: .* per worker .*ulimit -n"):
        LoadLimits(max_connections=10 * hard).check(too_many)
    spread = LoadPlan(URL, connections=hard, workers=4)  # a quarter each: fine
    LoadLimits(max_connections=10 * hard).check(spread)
