from __future__ import annotations

from typing import Any

import pytest

from latlab.measure.load.plan import PlanError
from latlab.measure.load.thresholds import judge_all, parse_threshold, parse_thresholds

LATENCY = {"min": 1.0, "mean": 4.0, "p50": 3.0, "p90": 8.0, "p99": 12.0, "p99_9": 30.0, "max": 50.0}


def summary(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "requests": 1000,
        "errors": 5,
        "rps": 2000.0,
        "latency_ms": LATENCY,
        "corrected_latency_ms": None,
    }
    return {**values, **overrides}


@pytest.mark.parametrize(
    ("text", "metric", "operator", "bound"),
    [
        ("p99<10ms", "p99", "<", 10.0),
        ("p99.9 <= 1.5s", "p99.9", "<=", 1500.0),
        ("p50<250us", "p50", "<", 0.25),
        ("mean<.5ms", "mean", "<", 0.5),
        ("max<=2s", "max", "<=", 2000.0),
        ("errors<0.1%", "errors", "<", 0.1),
        ("errors <= 1 %", "errors", "<=", 1.0),
        ("rps>5000", "rps", ">", 5000.0),
        ("rps>=99.5", "rps", ">=", 99.5),
    ],
)
def test_parses_metric_operator_and_bound_in_ms_percent_or_rps(
    text: str, metric: str, operator: str, bound: float
) -> None:
    threshold = parse_threshold(text)
    assert (threshold.metric, threshold.operator, threshold.bound) == (metric, operator, bound)
    assert threshold.expression == text


@pytest.mark.parametrize(
    "text",
    ["p99<10", "p95<10ms", "p99>10ms", "errors<1", "errors>1%", "rps<100", "rps>fast", "", "x"],
)
def test_unparsable_threshold_is_a_one_line_plan_error(text: str) -> None:
    with pytest.raises(PlanError, match=r"threshold .* is not understood") as caught:
        parse_threshold(text)
    assert "\n" not in str(caught.value)


def test_latency_thresholds_judge_the_summary_in_ms() -> None:
    judged = judge_all(parse_thresholds(["p99<12ms", "p99<=12ms", "p99.9<0.031s"]), summary())
    assert judged == [
        {"expression": "p99<12ms", "value": 12.0, "ok": False},
        {"expression": "p99<=12ms", "value": 12.0, "ok": True},
        {"expression": "p99.9<0.031s", "value": 30.0, "ok": True},
    ]


def test_errors_threshold_is_a_percentage_of_requests() -> None:
    judged = judge_all(parse_thresholds(["errors<0.5%", "errors<=0.5%"]), summary())
    assert [(v["value"], v["ok"]) for v in judged] == [(0.5, False), (0.5, True)]


def test_rps_threshold_judges_the_run_rate() -> None:
    judged = judge_all(parse_thresholds(["rps>2000", "rps>=2000"]), summary())
    assert [(v["value"], v["ok"]) for v in judged] == [(2000.0, False), (2000.0, True)]


def test_open_model_latency_is_judged_on_the_corrected_latency() -> None:
    corrected = {**LATENCY, "p99": 900.0}
    judged = judge_all(parse_thresholds(["p99<100ms"]), summary(corrected_latency_ms=corrected))
    assert judged == [{"expression": "p99<100ms", "value": 900.0, "ok": False}]


def test_a_run_that_measured_nothing_fails_its_thresholds() -> None:
    empty = {key: None for key in LATENCY}
    judged = judge_all(
        parse_thresholds(["p99<1s", "errors<50%"]), summary(requests=0, errors=0, latency_ms=empty)
    )
    assert judged == [
        {"expression": "p99<1s", "value": None, "ok": False},
        {"expression": "errors<50%", "value": None, "ok": False},
    ]
