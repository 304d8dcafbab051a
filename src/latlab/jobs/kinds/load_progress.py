"""A load run's checkpoint (where it is, at what rate and connections), and what is left of
it to run after a pause."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.seconds import SecondStats
from latlab.storage import JobRecord


@dataclass(slots=True)
class RunProgress:
    """A run's checkpoint: where it is, and the rate and connections it runs at now."""

    seconds: int
    requests: int
    errors: int
    elapsed_s: float
    rate: float | None
    connections: int
    counting_from: float | None = None  # epoch seconds at which this run's second 0 would begin

    @classmethod
    def of(cls, job: JobRecord, spec: LoadRunSpec) -> RunProgress:
        progress = job.progress
        rate = progress.get("rate", spec.rate)
        return cls(
            seconds=int(progress.get("seconds", 0)),
            requests=int(progress.get("requests", 0)),
            errors=int(progress.get("errors", 0)),
            elapsed_s=float(progress.get("elapsed_s", 0.0)),
            rate=None if rate is None else float(rate),
            connections=int(progress.get("connections", spec.connections)),
            counting_from=progress.get("counting_from"),
        )

    def values(self, last: SecondStats | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {
            "seconds": self.seconds,
            "requests": self.requests,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate": self.rate,
            "connections": self.connections,
            "counting_from": self.counting_from,
        }
        if last is not None:
            values["rps"] = last.requests
        return values


def remaining_plan(
    spec: LoadRunSpec, progress: RunProgress, ca_file: str | None = None
) -> LoadPlan | None:
    """What is left of the run after ``progress``, at its current rate and connections; None
    once nothing is. Only a run's first start warms up."""
    plan = spec.plan(ca_file)
    changes: dict[str, Any] = {"connections": progress.connections, "rate": progress.rate}
    if plan.requests is not None:
        left = plan.requests - progress.requests
        if left <= 0:
            return None
        changes["requests"] = left
    elif plan.duration_s is not None:
        left_s = plan.duration_s - progress.elapsed_s
        if left_s < 0.001:
            return None
        changes["duration_s"] = left_s
    if progress.seconds or progress.requests:
        changes["warmup_s"] = 0.0
    return replace(plan, **changes)
