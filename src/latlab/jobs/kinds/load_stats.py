"""A load run's stored figures: what each checkpoint writes and how it reads back.

Histograms of kind ``load``, one per job and bucket: second ``n`` of the run in bucket ``n``
(0, 1, …), the run's total in ``TOTAL_BUCKET`` (-1), the side probe's in ``PROBE_BUCKET``
(-2). Each second's payload also carries its row, so a page of rows is read without decoding
a histogram (~2 ms each).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from latlab.jobs.kinds.load_probe import side_probe_summary
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.measure.load.seconds import SecondStats
from latlab.measure.load.summary import RunTotals
from latlab.measure.load.thresholds import judge_all
from latlab.measure.stats import LatencyHistogram
from latlab.storage import JobRecord, Store
from latlab.storage.records import TOTAL_BUCKET

KIND = "load"
SideProbeFigures = tuple[LatencyHistogram, float]  # its histogram and interval
PROBE_BUCKET = -2
# Kept in the job's progress at the end; the percentile distribution is read from the total.
LEFT_OUT_OF_PROGRESS = ("percentiles",)


def second_payload(second: SecondStats, began_s: float | None = None) -> str:
    """What is stored for one second: its mergeable histograms plus its row, and when it
    began (epoch seconds: a run paused and resumed has stretches with gaps between them)."""
    if began_s is None:
        return second.to_payload(row=second.row())
    return second.to_payload(row=second.row(), began_s=began_s)


def second_row(payload: str) -> dict[str, Any]:
    return stored_second(payload)[0]


def stored_second(payload: str) -> tuple[dict[str, Any], float | None]:
    """A stored second's row, and when it began if that was stored (epoch seconds)."""
    document = json.loads(payload)
    row, began = document.get("row"), document.get("began_s")
    if not isinstance(row, dict):
        row = SecondStats.from_payload(payload).row()
    return dict(row), float(began) if isinstance(began, int | float) else None


def run_summary(
    total: SecondStats, *, open_model: bool, duration_s: float, probe: SideProbeFigures | None
) -> dict[str, Any]:
    """:meth:`RunTotals.summary` of the merged seconds, with ``probe`` when one ran."""
    totals = RunTotals(open_model=open_model)
    totals.total.merge(total)
    summary = totals.summary(duration_s)
    if probe is not None:
        summary["probe"] = side_probe_summary(*probe)
    return summary


def for_progress(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in summary.items() if key not in LEFT_OUT_OF_PROGRESS}


@dataclass(slots=True)
class StoredTotals:
    """A run's total and side-probe histograms as stored (empty before its first second)."""

    total: SecondStats
    probe: LatencyHistogram | None

    @classmethod
    async def read(cls, store: Store, job: JobRecord, spec: LoadRunSpec) -> StoredTotals:
        stored = await store.histograms.read(job.kind, job.id, PROBE_BUCKET, TOTAL_BUCKET)
        open_model = spec.rate is not None
        total = SecondStats(TOTAL_BUCKET, corrected=LatencyHistogram() if open_model else None)
        if TOTAL_BUCKET in stored:
            total = SecondStats.from_payload(stored[TOTAL_BUCKET])
        probe = None
        if spec.probe is not None:
            probe = LatencyHistogram()
            if PROBE_BUCKET in stored:
                probe.add_payload(stored[PROBE_BUCKET])
        return cls(total, probe)

    def summary(self, spec: LoadRunSpec, duration_s: float) -> dict[str, Any]:
        open_model = spec.rate is not None
        interval_s = spec.probe_interval_s()
        probe = None
        if self.probe is not None and interval_s is not None:
            probe = (self.probe, interval_s)
        return run_summary(self.total, open_model=open_model, duration_s=duration_s, probe=probe)


def final_progress(spec: LoadRunSpec, summary: Mapping[str, Any]) -> dict[str, Any]:
    """What an ended run keeps: its summary and its thresholds judged on it."""
    judged = judge_all(spec.parsed_thresholds(), summary)
    return {
        "summary": for_progress(summary),
        "thresholds": judged,
        "passed": all(verdict["ok"] for verdict in judged),
    }
