"""REST API for load runs: ``/api/v1/load-runs``."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import ValidationError

from latlab.api.deps import (
    IdempotencyDep,
    JobsDep,
    Limit,
    LiveLocationsDep,
    LoadRunIdPath,
    Offset,
    SettingsDep,
    app_state,
    count_create,
    known_keys_only,
    shards_have_workers,
)
from latlab.api.errors import Problem, request_validation_error
from latlab.api.idempotency import IdempotencyKey
from latlab.api.load_run_schemas import (
    LoadRunChange,
    LoadRunPublic,
    LoadRunsPublic,
    LoadSecondPublic,
    LoadSecondsPublic,
)
from latlab.api.reports import report_response
from latlab.jobs.kinds.load import KIND, LoadRunner, RetuneRefused
from latlab.jobs.kinds.load_queries import LoadRunQueries
from latlab.jobs.kinds.load_remote import ChangeOutOfBounds, retune_anywhere, retune_sharded
from latlab.jobs.kinds.load_sharded import SHARD_KIND, shard_ids
from latlab.jobs.kinds.load_spec import LoadRunLimits, LoadRunSpec
from latlab.jobs.quota import RunningLimit
from latlab.jobs.state import Action
from latlab.measure.load.plan import LoadLimits
from latlab.measure.load.summary import CSV_COLUMNS
from latlab.storage import JobRecord, JobState
from latlab.web.reports import load_run_data

router = APIRouter(prefix="/api/v1/load-runs", tags=["load runs"])
SECONDS_PAGE = 500  # seconds per store read when exporting CSV
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No load run with this id."}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The load run's state does not allow this."}
}
StartQuery = Annotated[bool, Query(description="Start it in the same call.")]


def _queries(request: Request) -> LoadRunQueries:
    return LoadRunQueries(app_state(request).store)


def _runner(request: Request) -> LoadRunner:
    runner = app_state(request).jobs.runner(KIND)
    assert isinstance(runner, LoadRunner)
    return runner


def _limits(request: Request) -> LoadRunLimits:
    """The settings' bounds and the app's own target policy (shared with the probes)."""
    state = app_state(request)
    settings = state.settings
    policy = state.probe_limits.policy
    return LoadRunLimits(LoadLimits.from_settings(settings), policy, settings.min_interval_s)


def _running_limit(request: Request) -> RunningLimit:
    settings = app_state(request).settings
    most = settings.max_running_load_runs
    return RunningLimit(most, "LATLAB_MAX_RUNNING_LOAD_RUNS", "load runs")


def _change_refusal(
    job: JobRecord, change: LoadRunChange, limits: LoadLimits, workers_running: int | None
) -> tuple[str, str] | None:
    """``(field, why)`` when a live change is out of bounds, else None."""
    rate, connections = change.rate, change.connections
    if rate is not None and rate > limits.max_rate:
        return "rate", f"rate must be at most {limits.max_rate:g} (LATLAB_LOAD_MAX_RATE)"
    if connections is None:
        return None
    if connections > limits.max_connections:
        most = limits.max_connections
        return "connections", f"connections must be at most {most} (LATLAB_LOAD_MAX_CONNECTIONS)"
    if shard_ids(job):
        return None  # held to each shard's processes by the change itself
    workers = workers_running
    if workers is None:  # not running here: the most it can have
        spec = LoadRunSpec.model_validate(job.spec)
        # The value it started with, or a change accepted against this bound since: never
        # below the processes that run, so no change down to it leaves one idle.
        workers = spec.processes(int(job.progress.get("connections", spec.connections)))
    if connections < workers:
        return "connections", f"connections must be at least the run's {workers} worker(s)"
    return None


LoadRunsDep = Annotated[LoadRunQueries, Depends(_queries)]
LoadRunnerDep = Annotated[LoadRunner, Depends(_runner)]
LoadRunLimitsDep = Annotated[LoadRunLimits, Depends(_limits)]
RunningLimitDep = Annotated[RunningLimit, Depends(_running_limit)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=LoadRunPublic,
    responses={429: {"description": "Too many creates a minute, or (start) too many running."}},
    dependencies=[Depends(count_create), Depends(known_keys_only(LoadRunSpec))],
)
async def create(
    request: Request,
    spec: LoadRunSpec,
    jobs: JobsDep,
    limits: LoadRunLimitsDep,
    idempotency: IdempotencyDep,
    running: RunningLimitDep,
    settings: SettingsDep,
    key: IdempotencyKey = None,
    start: StartQuery = False,
) -> Response:
    """Create a load run (``created``), or with ``?start=true`` create and start it."""
    try:
        checked = LoadRunSpec.validate_new(spec.model_dump(), limits)
    except ValidationError as exc:
        raise request_validation_error(exc, "body") from exc
    shards_have_workers(checked.shards, checked.locations, settings)

    async def created() -> LoadRunPublic:
        job = await jobs.create(KIND, checked.model_dump(), start=start, limit=running)
        return LoadRunPublic.of(job)

    return await idempotency.answer(request, key, created)


@router.get("", response_model=LoadRunsPublic)
async def list_load_runs(
    runs: LoadRunsDep,
    locations: LiveLocationsDep,
    state: Annotated[JobState | None, Query(description="Only runs in this state.")] = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> LoadRunsPublic:
    page = await runs.page(state, offset=offset, limit=limit)
    data = [LoadRunPublic.of(job, live_locations=locations) for job in page.items]
    return LoadRunsPublic(data=data, count=page.total, offset=offset, limit=limit)


@router.get("/{load_run_id}", response_model=LoadRunPublic, responses=_NOT_FOUND)
async def get(
    load_run_id: LoadRunIdPath, runs: LoadRunsDep, locations: LiveLocationsDep
) -> LoadRunPublic:
    """The run with its figures so far, from its stored seconds."""
    job = await runs.get(load_run_id)
    return LoadRunPublic.of(job, await runs.figures(job), locations)


@router.post(
    "/{load_run_id}/{action}",
    response_model=LoadRunPublic,
    responses={**_NOT_FOUND, **_CONFLICT, 429: {"description": "Too many running."}},
)
async def act(
    load_run_id: LoadRunIdPath, action: Action, jobs: JobsDep, running: RunningLimitDep
) -> LoadRunPublic:
    """start, pause, resume or stop. A resume runs what is left, numbering seconds on."""
    return LoadRunPublic.of(await jobs.act(KIND, load_run_id, action, limit=running))


@router.patch(
    "/{load_run_id}",
    response_model=LoadRunPublic,
    responses={
        **_NOT_FOUND,
        409: {
            "model": Problem,
            "description": "Not running anywhere, or a rate for a closed model.",
        },
    },
)
async def change(
    request: Request,
    load_run_id: LoadRunIdPath,
    body: LoadRunChange,
    jobs: JobsDep,
    runs: LoadRunsDep,
    runner: LoadRunnerDep,
    settings: SettingsDep,
) -> LoadRunPublic:
    """Change a running run's ``rate`` and/or ``connections``: in effect within a second,
    and kept should it be paused and resumed."""
    async with jobs.lock((KIND, load_run_id)):  # not while a pause or stop halts it
        job = await runs.get(load_run_id)
        running = runner.workers_running(job.id)
        refusal = _change_refusal(job, body, LoadLimits.from_settings(settings), running)
        if refusal is not None:
            field, message = refusal
            value = getattr(body, field)
            error = {"type": "value_error", "loc": ["body", field], "msg": message, "input": value}
            raise RequestValidationError([error])
        state = app_state(request)
        asker, rate, connections = state.owner_requests, body.rate, body.connections
        try:
            if shard_ids(job):
                shard_runner = jobs.runner(SHARD_KIND)
                assert isinstance(shard_runner, LoadRunner)
                await retune_sharded(
                    shard_runner, asker, state.store, job,
                    rate=rate, connections=connections,
                )  # fmt: skip
            else:
                await retune_anywhere(runner, asker, job, rate=rate, connections=connections)
        except RetuneRefused as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except ChangeOutOfBounds as exc:
            value = getattr(body, exc.field)
            error = {"type": "value_error", "loc": ["body", exc.field], "msg": str(exc)}
            raise RequestValidationError([{**error, "input": value}]) from exc
        return LoadRunPublic.of(await runs.get(load_run_id))


@router.delete("/{load_run_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete(load_run_id: LoadRunIdPath, jobs: JobsDep) -> Response:
    """Stop the run if it runs (its worker processes end) and delete it with its seconds."""
    await jobs.delete(KIND, load_run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{load_run_id}/seconds", response_model=LoadSecondsPublic, responses=_NOT_FOUND)
async def seconds(
    load_run_id: LoadRunIdPath, runs: LoadRunsDep, offset: Offset = 0, limit: Limit = 100
) -> LoadSecondsPublic:
    """One row per second of the run, from ``offset`` (the second number)."""
    page = await runs.seconds(load_run_id, offset=offset, limit=limit)
    return LoadSecondsPublic.of(page.items, page.total, offset, limit)


async def _csv_lines(runs: LoadRunQueries, job_id: int) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    async for rows in runs.seconds_from(job_id, SECONDS_PAGE):
        writer.writerows(rows)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        await asyncio.sleep(0)  # a store that never waits (memory) must not hold the loop
    yield buffer.getvalue()


@router.get(
    "/{load_run_id}/seconds.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **_NOT_FOUND},
)
async def seconds_csv(load_run_id: LoadRunIdPath, runs: LoadRunsDep) -> StreamingResponse:
    """The per-second rows as CSV: ``second,requests,errors,rps,p50_ms,p90_ms,p99_ms,max_ms``."""
    job = await runs.get(load_run_id)
    headers = {"Content-Disposition": f'attachment; filename="load-run-{job.id}.csv"'}
    return StreamingResponse(
        _csv_lines(runs, job.id), media_type="text/csv; charset=utf-8", headers=headers
    )


@router.get(
    "/{load_run_id}/report.html",
    response_class=Response,  # other answers are JSON: only the 200 is text/html
    responses={
        200: {"content": {"text/html": {}}, "description": "One self-contained HTML file."},
        **_NOT_FOUND,
        503: {"description": "The chart library is not installed (`make install`)."},
    },
)
async def report(load_run_id: LoadRunIdPath, runs: LoadRunsDep) -> HTMLResponse:
    """The run as one HTML file: figures, per-second charts and percentiles inside, no
    network needed to open it (`latlab report load-run ID -o FILE.html` saves it)."""
    job = await runs.get(load_run_id)
    public = LoadRunPublic.of(job, await runs.figures(job)).model_dump(mode="json")
    seconds = [
        LoadSecondPublic.model_validate(row).model_dump(mode="json")
        async for rows in runs.seconds_from(job.id, SECONDS_PAGE)
        for row in rows
    ]
    return report_response(f"Load run {job.id}", "load-run", load_run_data(public, seconds))
