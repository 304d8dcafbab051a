"""Load run shapes of the v1 API: ``LoadRunPublic`` and its parts, the PATCH body, seconds."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

from latlab.api.waiting import WAITING_FOR, waiting_for
from latlab.jobs.kinds.load_queries import LoadFigures
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.measure.errors import ErrorKind
from latlab.storage import JobRecord, JobState


class LoadProgressPublic(BaseModel):
    seconds: int = Field(0, description="Seconds of the run stored so far.")
    requests: int = Field(0, description="Requests finished (answered or failed) so far.")
    errors: int = Field(0, description="Transport errors plus unexpected statuses so far.")
    rps: int | None = Field(None, description="Requests finished in the last stored second.")
    elapsed_s: float = Field(0.0, description="Time the run has counted requests for.")
    rate: float | None = Field(None, description="Requests/s now (open model); null: closed.")
    connections: int | None = Field(None, description="Connections now.")
    shards: list[int] | None = Field(
        None,
        description="A sharded run's shard jobs (`load_shard` in `GET /api/v1/workers`), "
        "once started.",
    )


class LatencyFigures(BaseModel):
    min: float | None
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    p99_9: float | None
    max: float | None


class ProbeFigures(LatencyFigures):
    """The side probe's figures: the ``probe`` of ``latlab load --json``."""

    interval_s: float = Field(description="Time between two probes.")
    count: int = Field(description="Side probes made.")
    errors: int = Field(description="Side probes that failed.")
    errors_by_kind: dict[ErrorKind, int] = Field(description="Failed probes by kind, every kind.")


class PercentileRow(BaseModel):
    value_ms: float
    percentile: float
    total_count: float


class LoadStatsPublic(BaseModel):
    """The summary ``latlab load --json`` writes, from the stored seconds (so far)."""

    requests: int
    errors: int
    duration_s: float
    rps: float
    latency_ms: LatencyFigures = Field(description="From the actual send (service latency).")
    corrected_latency_ms: LatencyFigures | None = Field(
        description="From the intended send time (open model); null in a closed-model run."
    )
    percentiles: list[PercentileRow] = Field(
        description="HDR percentile distribution of the service latency."
    )
    corrected_percentiles: list[PercentileRow] | None = Field(
        None, description="The same of the corrected latency (open model); null otherwise."
    )
    status: dict[str, int] = Field(description="Responses by status class.")
    errors_by_kind: dict[ErrorKind, int]
    late_sends: int | None = Field(description="Sends over 10 ms late (open model).")
    missed_sends: int | None = Field(
        None, description="Sends due before the run ended that never left (open model)."
    )
    probe: ProbeFigures | None = Field(None, description="The side probe's, when one ran.")


class ThresholdVerdict(BaseModel):
    expression: str
    value: float | None = Field(description="Measured: ms for latencies, % errors, req/s.")
    ok: bool


class LoadRunPublic(BaseModel):
    id: int
    state: JobState
    spec: LoadRunSpec
    progress: LoadProgressPublic
    stats: LoadStatsPublic | None = Field(
        None, description="The run's figures so far (on GET of one run only)."
    )
    thresholds: list[ThresholdVerdict] | None = Field(
        None, description="Judged once the run completed or was stopped."
    )
    passed: bool | None = Field(None, description="Whether every threshold held (once judged).")
    error: str | None = None
    waiting_for: str | None = WAITING_FOR
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(
        cls,
        job: JobRecord,
        figures: LoadFigures | None = None,
        live_locations: Collection[str] | None = None,
    ) -> LoadRunPublic:
        """``live_locations``: where workers are up (None: no workers in this deployment)."""
        spec = LoadRunSpec.model_validate(job.spec)
        progress = {"rate": spec.rate, "connections": spec.connections}  # until changed
        progress |= {k: v for k, v in job.progress.items() if k in LoadProgressPublic.model_fields}
        thresholds = job.progress.get("thresholds")
        return cls(
            id=job.id,
            state=job.state,
            spec=spec,
            progress=LoadProgressPublic.model_validate(progress),
            stats=None if figures is None else LoadStatsPublic.model_validate(figures.stats),
            thresholds=thresholds if isinstance(thresholds, list) else None,
            passed=job.progress.get("passed"),
            error=job.error,
            waiting_for=waiting_for(job, live_locations),
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class LoadRunsPublic(BaseModel):
    data: list[LoadRunPublic]
    count: int = Field(description="Load runs matching the filter, on every page.")
    offset: int
    limit: int


class LoadRunChange(BaseModel):
    """A change to a running run, in effect within a second and kept for a resume."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Strict: a bool or a text is refused, not read as 1 or as a number.
    rate: StrictFloat | None = Field(None, gt=0, description="New rate, requests/s (open model).")
    connections: StrictInt | None = Field(None, ge=1, le=1_000_000, description="New connections.")

    @model_validator(mode="after")
    def _something(self) -> LoadRunChange:
        if self.rate is None and self.connections is None:
            raise ValueError("give rate, connections or both")
        return self


class LoadSecondPublic(BaseModel):
    second: int = Field(description="Second of the run, from 0.")
    requests: int
    errors: int
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class LoadSecondsPublic(BaseModel):
    data: list[LoadSecondPublic]
    count: int = Field(description="Seconds of the run stored in all.")
    offset: int
    limit: int

    @classmethod
    def of(
        cls, rows: list[dict[str, Any]], count: int, offset: int, limit: int
    ) -> LoadSecondsPublic:
        data = [LoadSecondPublic.model_validate(row) for row in rows]
        return cls(data=data, count=count, offset=offset, limit=limit)
