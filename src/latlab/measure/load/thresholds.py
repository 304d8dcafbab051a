"""Pass/fail conditions on a load run's summary: ``p99<10ms``, ``errors<0.1%``, ``rps>5000``.

Parsed before the run, so a typo costs no traffic; judged on :meth:`RunTotals.summary`. In an
open-model run the latency conditions judge the corrected latency (from the intended send
time): that is what a client arriving at that rate sees, and a stall cannot hide from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from latlab.measure.load.plan import PlanError

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_LATENCY = re.compile(rf"^(p50|p90|p99|p99\.9|mean|max)\s*(<=|<)\s*{_NUMBER}\s*(us|µs|ms|s)$")
_ERRORS = re.compile(rf"^errors\s*(<=|<)\s*{_NUMBER}\s*%$")
_RPS = re.compile(rf"^rps\s*(>=|>)\s*{_NUMBER}$")
_MS_PER_UNIT = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
_SUMMARY_KEY = {"p99.9": "p99_9"}  # the JSON key of each latency name that differs from it
_HELP = "write p50|p90|p99|p99.9|mean|max<TIME (us, ms, s), errors<N% or rps>N"


@dataclass(frozen=True, slots=True)
class Threshold:
    """One condition: ``metric operator bound``, the bound in ms, % or requests/s."""

    expression: str
    metric: str  # a latency name, "errors" or "rps"
    operator: str  # "<", "<=", ">" or ">="
    bound: float

    def value(self, summary: Mapping[str, Any]) -> float | None:
        """What the run measured for this metric; None when there is nothing to judge."""
        if self.metric == "rps":
            return float(summary["rps"])
        if self.metric == "errors":
            requests = int(summary["requests"])
            return 100.0 * int(summary["errors"]) / requests if requests else None
        latency = summary.get("corrected_latency_ms") or summary["latency_ms"]
        measured = latency[_SUMMARY_KEY.get(self.metric, self.metric)]
        return None if measured is None else float(measured)

    def holds(self, value: float) -> bool:
        if self.operator == "<":
            return value < self.bound
        if self.operator == "<=":
            return value <= self.bound
        if self.operator == ">":
            return value > self.bound
        return value >= self.bound

    def judge(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """``{"expression", "value", "ok"}``; a run that measured nothing fails."""
        value = self.value(summary)
        return {
            "expression": self.expression,
            "value": None if value is None else round(value, 4),
            "ok": value is not None and self.holds(value),
        }


def parse_threshold(text: str) -> Threshold:
    """A :class:`Threshold` from ``--threshold`` text; :class:`PlanError` if it is not one."""
    expression = text.strip()
    match = _LATENCY.match(expression)
    if match is not None:
        metric, operator, number, unit = match.groups()
        return Threshold(expression, metric, operator, float(number) * _MS_PER_UNIT[unit])
    for metric, pattern in (("errors", _ERRORS), ("rps", _RPS)):
        match = pattern.match(expression)
        if match is not None:
            return Threshold(expression, metric, match.group(1), float(match.group(2)))
    raise PlanError(f"threshold {text!r} is not understood: {_HELP}")


def parse_thresholds(texts: Iterable[str]) -> list[Threshold]:
    return [parse_threshold(text) for text in texts]


def judge_all(thresholds: Iterable[Threshold], summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [threshold.judge(summary) for threshold in thresholds]
