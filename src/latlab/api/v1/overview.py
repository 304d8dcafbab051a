"""``/api/v1/overview``: what the dashboard's overview shows, in one read a page.

Each experiment of the page comes with its last results (the heartbeat strip) and its
headline figures, each load run with its figures so far, so that a page of 50 is one
request, not a hundred and one.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from latlab.api.deps import ExperimentsDep, LiveLocationsDep, Offset
from latlab.api.load_run_schemas import LoadRunPublic
from latlab.api.schemas import ExperimentPublic
from latlab.api.v1.load_runs import LoadRunsDep
from latlab.jobs.queries import ExperimentQueries, JobQueries
from latlab.storage import JobRecord, JobState

router = APIRouter(prefix="/api/v1/overview", tags=["overview"])

HostQuery = Annotated[
    str | None,
    Query(
        max_length=253,
        description="Only experiments whose host contains this text (any letter case).",
    ),
]
PageLimit = Annotated[int, Query(ge=1, le=100, description="Experiments per page (1-100).")]
RecentQuery = Annotated[int, Query(ge=1, le=100, description="Last results of each (1-100).")]


class RecentResult(BaseModel):
    seq: int
    location: str | None = None
    timestamp: datetime = Field(description="When the probe started (UTC).")
    latency_ms: float = Field(description="-1 when no response came.")
    error: str | None = None


class ExperimentSummary(BaseModel):
    experiment: ExperimentPublic
    recent: list[RecentResult] = Field(description="The last results, oldest first.")
    count: int = Field(description="Probes recorded, failed ones included.")
    errors: int
    p50_ms: float | None
    p99_ms: float | None


class ExperimentsOverview(BaseModel):
    data: list[ExperimentSummary] = Field(description="Newest experiment first.")
    count: int = Field(description="Experiments that match, in all.")
    offset: int
    limit: int


class LoadRunsOverview(BaseModel):
    data: list[LoadRunPublic] = Field(description="Newest run first, each with its stats.")
    count: int = Field(description="Load runs that match, in all.")
    offset: int
    limit: int


async def summary_of(
    experiments: ExperimentQueries, job: JobRecord, recent: int, live: set[str] | None
) -> ExperimentSummary:
    """From ``job`` as read: one deleted since is summarized from what is left (nothing),
    not read again (its 404 would fail the whole page)."""
    last = await experiments.recent(job, recent)
    stats, _ = await experiments.stats_of(job)
    return ExperimentSummary(
        experiment=ExperimentPublic.of(job, live),
        recent=[RecentResult.model_validate(result, from_attributes=True) for result in last],
        count=stats.count,
        errors=stats.errors,
        p50_ms=stats.p50_ms,
        p99_ms=stats.p99_ms,
    )


@router.get("/experiments", response_model=ExperimentsOverview)
async def experiments_overview(
    experiments: ExperimentsDep,
    locations: LiveLocationsDep,
    state: Annotated[JobState | None, Query(description="Only experiments in this state.")] = None,
    host: HostQuery = None,
    offset: Offset = 0,
    limit: PageLimit = 50,
    recent: RecentQuery = 30,
) -> ExperimentsOverview:
    """Experiments newest first, each with its last `recent` results, p50, p99 and errors."""
    shown, total = await _newest_first(experiments, state, host, offset, limit)
    data = await asyncio.gather(*(summary_of(experiments, job, recent, locations) for job in shown))
    return ExperimentsOverview(data=list(data), count=total, offset=offset, limit=limit)


@router.get("/load-runs", response_model=LoadRunsOverview)
async def load_runs_overview(
    runs: LoadRunsDep,
    locations: LiveLocationsDep,
    state: Annotated[JobState | None, Query(description="Only runs in this state.")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Runs per page (1-100).")] = 50,
) -> LoadRunsOverview:
    """Load runs newest first, each with its figures so far (`stats`: req/s, p50, p99, …)."""
    shown, total = await _newest_first(runs, state, None, offset, limit)
    data = await asyncio.gather(*(runs.figures(job) for job in shown))
    pairs = zip(shown, data, strict=True)
    public = [LoadRunPublic.of(job, figures, locations) for job, figures in pairs]
    return LoadRunsOverview(data=public, count=total, offset=offset, limit=limit)


async def _newest_first(
    queries: JobQueries,
    state: JobState | None,
    host: str | None,
    offset: int,
    limit: int,
) -> tuple[list[JobRecord], int]:
    """The page ``offset``..``offset + limit`` counting from the newest, and how many match.
    Jobs are listed by ascending id, so without a host to match the page is read from the end;
    a host is matched against every experiment's spec (a scan: fine for thousands)."""
    if host:
        wanted = host.casefold()  # host names are case-insensitive
        jobs = [job for job in (await queries.page(state)).items if wanted in _host(job)]
        jobs.reverse()
        return jobs[offset : offset + limit], len(jobs)
    total = (await queries.page(state, limit=1)).total
    end = total - offset  # the page ends here, counted from the oldest
    if end <= 0:
        return [], total
    page = await queries.page(state, offset=max(0, end - limit), limit=min(limit, end))
    return page.items[::-1], total


def _host(job: JobRecord) -> str:
    return str(job.spec.get("host", "")).casefold()
