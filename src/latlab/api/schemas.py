"""Response shapes: the seed service's (``Experiment``…) and the v1 API's (``…Public``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from latlab.api.load_run_schemas import PercentileRow
from latlab.api.waiting import WAITING_FOR, waiting_for
from latlab.jobs.kinds.probe_spec import ProbeSpec
from latlab.jobs.queries import StatsWindow
from latlab.measure.errors import ErrorKind
from latlab.measure.stats import LatencyStats
from latlab.storage import JobRecord, JobState, ProbeResult


class ExperimentSettings(BaseModel):
    host: str
    port: int
    interval: float
    count: int


class ExperimentResult(BaseModel):
    status_code: int = Field(description="HTTP status, 0 when no response came.")
    latency_ms: float = Field(description="Total time of the exchange, -1 when no response came.")
    timestamp: datetime = Field(description="When the probe started (UTC).")
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    dns_ms: float | None = None
    error: str | None = Field(
        None,
        description="Why the probe failed: no response (the reason), or the check the "
        "response failed, named by its field ('expect_status: got 503, not 2xx').",
    )


class Experiment(BaseModel):
    id: int
    settings: ExperimentSettings
    state: JobState
    results: list[ExperimentResult]
    created_at: datetime
    updated_at: datetime


class ExperimentCreated(BaseModel):
    experiment_id: int


class ExperimentStateChanged(BaseModel):
    experiment_id: int
    state: JobState


def seed_settings(spec: dict[str, Any]) -> ExperimentSettings:
    return ExperimentSettings(
        host=spec["host"], port=spec["port"], interval=spec["interval_s"], count=spec["count"]
    )


def seed_result(result: ProbeResult) -> ExperimentResult:
    return ExperimentResult.model_validate(result, from_attributes=True)


def seed_experiment(job: JobRecord, results: list[ProbeResult]) -> Experiment:
    return Experiment(
        id=job.id,
        settings=seed_settings(job.spec),
        state=job.state,
        results=[seed_result(result) for result in results],
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


class ExperimentPublic(BaseModel):
    id: int
    state: JobState
    settings: ProbeSpec
    done: int = Field(description="Probes recorded so far.")
    skipped_slots: int = Field(description="Schedule slots missed because a probe overran.")
    by_location: dict[str, int] | None = Field(
        None, description="Probes recorded so far at each location (with `locations`)."
    )
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    waiting_for: str | None = WAITING_FOR

    @classmethod
    def of(cls, job: JobRecord, live_locations: Collection[str] | None = None) -> ExperimentPublic:
        """``live_locations``: where workers are up (None: no workers in this deployment)."""
        return cls(
            id=job.id,
            state=job.state,
            settings=ProbeSpec.model_validate(job.spec),
            done=int(job.progress.get("done", 0)),
            skipped_slots=int(job.progress.get("skipped_slots", 0)),
            by_location=_by_location(job),
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            waiting_for=waiting_for(job, live_locations),
        )


def _by_location(job: JobRecord) -> dict[str, int] | None:
    locations = job.spec.get("locations")
    if not locations:
        return None
    done = job.progress.get("by_location") or {}
    return {str(where): int(done.get(where, 0)) for where in locations}


class ExperimentsPublic(BaseModel):
    data: list[ExperimentPublic]
    count: int = Field(description="Experiments matching the filter, on every page.")
    offset: int
    limit: int


class ExperimentsCreated(BaseModel):
    data: list[ExperimentPublic]
    count: int = Field(description="Experiments created by this call.")


class ResultPublic(ExperimentResult):
    seq: int = Field(description="Probe number, 0-based, no gaps (at its location).")
    location: str | None = Field(
        None, description="Where the probe ran: its series' location (with `locations`)."
    )
    scheduled_at: datetime = Field(description="When the schedule wanted the probe (UTC).")

    @classmethod
    def of(cls, result: ProbeResult) -> ResultPublic:
        return cls.model_validate(result, from_attributes=True)


class ResultsPublic(BaseModel):
    data: list[ResultPublic]
    count: int = Field(description="Results of the experiment in all.")
    offset: int
    limit: int


class StatsPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    count: int = Field(description="Probes, failed ones included.")
    errors: int = Field(description="Failed probes: no response, or a failed check.")
    errors_by_kind: dict[ErrorKind, int] = Field(
        description="Failed probes by kind; every kind is listed, 0 when none."
    )
    min_ms: float | None
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p99_9_ms: float | None
    max_ms: float | None
    stddev_ms: float | None = Field(description="Population standard deviation.")
    window_start: datetime | None = Field(
        None, alias="from", description="Start of the window, rounded down to the minute."
    )
    window_end: datetime | None = Field(
        None, alias="to", description="End of the window (excluded), rounded up to the minute."
    )
    by_location: dict[str, StatsPublic] | None = Field(
        None,
        description="The stats of each location's probes (with `locations`); the figures "
        "above are their exact merge.",
    )

    @classmethod
    def of(
        cls,
        stats: LatencyStats,
        window: StatsWindow | None = None,
        by_location: Mapping[str, LatencyStats] | None = None,
    ) -> StatsPublic:
        figures: dict[str, Any] = {
            name: getattr(stats, name) for name in _FIGURES if name in cls.model_fields
        }
        if window is not None:
            figures |= {"window_start": window.start, "window_end": window.end}
        if by_location:
            figures["by_location"] = {
                where: cls.of(located, window) for where, located in by_location.items()
            }
        return cls(**figures)


_FIGURES = [field.name for field in dataclasses.fields(LatencyStats)]


class PercentilesPublic(BaseModel):
    data: list[PercentileRow] = Field(description="One row per HDR step, lowest first.")
    count: int = Field(description="Probes in all; the distribution holds those answered.")


class BandPublic(BaseModel):
    start: datetime = Field(description="The minute's start (UTC).")
    count: int = Field(description="Probes started in it, failed ones included.")
    errors: int
    min_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, start: datetime, stats: LatencyStats) -> BandPublic:
        figures = {name: getattr(stats, name) for name in cls.model_fields if name != "start"}
        return cls(start=start, **figures)


class BandsPublic(BaseModel):
    data: list[BandPublic] = Field(description="One per minute that holds a probe, oldest first.")
