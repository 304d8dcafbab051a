"""What the dashboard draws of an experiment, in the REST API: its percentile distribution,
its minute bands and its one-file report (``/api/v1/experiments/{id}/…``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse

from latlab.api.deps import (
    ExperimentIdPath,
    ExperimentsDep,
    LiveLocationsDep,
    LocationQuery,
    query_errors,
)
from latlab.api.load_run_schemas import PercentileRow
from latlab.api.reports import report_response
from latlab.api.schemas import (
    BandPublic,
    BandsPublic,
    ExperimentPublic,
    PercentilesPublic,
    ResultPublic,
    ResultsPublic,
    StatsPublic,
)
from latlab.api.streaming import RESULTS_PAGE
from latlab.web.reports import experiment_data, experiment_points

router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"description": "No experiment with this id."}
}


@router.get("/{experiment_id}/percentiles", response_model=PercentilesPublic, responses=_NOT_FOUND)
async def percentiles(
    experiment_id: ExperimentIdPath, experiments: ExperimentsDep, location: LocationQuery = None
) -> PercentilesPublic:
    """The HDR percentile distribution of the latencies (as `latlab load` prints it): one
    row per step, for percentile curves and comparisons. Failed probes are not in it."""
    with query_errors():
        histogram, _ = await experiments.histograms(
            await experiments.get(experiment_id), None, location
        )
    rows = histogram.percentile_distribution()
    return PercentilesPublic(data=[PercentileRow(**row) for row in rows], count=histogram.count)


@router.get("/{experiment_id}/recent", response_model=ResultsPublic, responses=_NOT_FOUND)
async def recent(
    experiment_id: ExperimentIdPath,
    experiments: ExperimentsDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many (1-1000).")] = 60,
) -> ResultsPublic:
    """The last `limit` results by start time, oldest first, of every location (`/results`
    lists one location after the other): what a sparkline of the newest draws."""
    job = await experiments.get(experiment_id)
    last = await experiments.recent(job, limit)
    data = [ResultPublic.of(result) for result in last]
    return ResultsPublic(data=data, count=int(job.progress.get("done", 0)), offset=0, limit=limit)


@router.get("/{experiment_id}/bands", response_model=BandsPublic, responses=_NOT_FOUND)
async def bands(
    experiment_id: ExperimentIdPath, experiments: ExperimentsDep, location: LocationQuery = None
) -> BandsPublic:
    """Each minute that holds a probe, oldest first, with its probes' min, p50, p90, p99,
    max and errors: the percentile bands of a smoke chart (as SmokePing draws)."""
    job = await experiments.get(experiment_id)
    with query_errors():
        minutes = await experiments.bands(job, location)
    return BandsPublic(data=[BandPublic.of(start, stats) for start, stats in minutes])


@router.get(
    "/{experiment_id}/report.html",
    response_class=Response,  # other answers are JSON: only the 200 is text/html
    responses={
        200: {"content": {"text/html": {}}, "description": "One self-contained HTML file."},
        **_NOT_FOUND,
        503: {"description": "The chart library is not installed (`make install`)."},
    },
)
async def report(
    experiment_id: ExperimentIdPath, experiments: ExperimentsDep, locations: LiveLocationsDep
) -> HTMLResponse:
    """The experiment as one HTML file: figures and latency chart inside, no network needed
    to open it (`latlab report experiment ID -o FILE.html` saves it)."""
    job = await experiments.get(experiment_id)
    stats, by_location = await experiments.stats_of(job)
    pages = experiments.results_from(job, RESULTS_PAGE)
    points = await experiment_points(pages, stats.count)
    data = experiment_data(
        ExperimentPublic.of(job, locations).model_dump(mode="json"),
        StatsPublic.of(stats, None, by_location).model_dump(mode="json", by_alias=True),
        points,
        stats.count,
    )
    return report_response(f"Experiment {job.id}", "experiment", data)
