"""The original experiment service's five routes, same parameters and shapes.

Served at the root and under ``/api`` (where the original mounted them). Differences from the
original are fixes: unknown ids are 404, malformed ids 422, settings are validated, and an
action the experiment's state does not allow is a 400 (the original's code for a bad request).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from latlab.api.deps import (
    ExperimentIdQuery,
    ExperimentsDep,
    ExperimentsLimitDep,
    IdempotencyDep,
    JobsDep,
    ProbeLimitsDep,
    ProbesDep,
    SettingsDep,
    count_create,
)
from latlab.api.errors import request_validation_error, transition_detail
from latlab.api.idempotency import IdempotencyKey
from latlab.api.schemas import (
    Experiment,
    ExperimentCreated,
    ExperimentResult,
    ExperimentStateChanged,
)
from latlab.api.streaming import experiment_json, experiments_json
from latlab.jobs.kinds.probe import KIND
from latlab.jobs.kinds.probe_spec import ProbeLimits, ProbeSpec
from latlab.jobs.state import Action, InvalidTransition
from latlab.settings import Settings

router = APIRouter(tags=["experiments (original API)"])

HostQuery = Annotated[str, Query(min_length=1, max_length=253, description="Target host.")]
PortQuery = Annotated[int, Query(ge=1, le=65535, description="Target port.")]
PathQuery = Annotated[str, Query(description="Path to GET on the target.")]
_RENAMES = {"interval_s": "interval"}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No experiment with this id."}}
_TOO_MANY: dict[int | str, dict[str, Any]] = {429: {"description": "Over a quota (Retry-After)."}}


def _spec(settings: Settings, limits: ProbeLimits, **fields: object) -> ProbeSpec:
    try:
        return ProbeSpec.validate_new({"timeout_s": settings.probe_timeout_s, **fields}, limits)
    except ValidationError as exc:
        raise request_validation_error(exc, "query", _RENAMES) from exc


@router.get("/test-latency", response_model=ExperimentResult)
async def latency_check(
    host: HostQuery,
    port: PortQuery,
    settings: SettingsDep,
    limits: ProbeLimitsDep,
    probes: ProbesDep,
    path: PathQuery = "/api/latency",
) -> ExperimentResult:
    """Probe the target once, now."""
    spec = _spec(settings, limits, host=host, port=port, path=path)
    timestamp = datetime.now(UTC)
    exchange = await probes.probe_once(spec.target())
    return ExperimentResult(timestamp=timestamp, **dataclasses.asdict(exchange))


@router.post(
    "/create_experiment",
    response_model=ExperimentCreated,
    responses=_TOO_MANY,
    dependencies=[Depends(count_create)],
)
async def create_experiment(
    host: HostQuery,
    port: PortQuery,
    interval: Annotated[float, Query(gt=0, description="Seconds between probes.")],
    count: Annotated[int, Query(ge=1, description="Probes in total.")],
    jobs: JobsDep,
    settings: SettingsDep,
    limits: ProbeLimitsDep,
    request: Request,
    idempotency: IdempotencyDep,
    path: PathQuery = "/api/latency",
    key: IdempotencyKey = None,
) -> Response:
    fields = {"interval_s": interval, "count": count, "path": path}
    spec = _spec(settings, limits, host=host, port=port, **fields)

    async def created() -> ExperimentCreated:
        job = await jobs.create(KIND, spec.model_dump())
        return ExperimentCreated(experiment_id=job.id)

    return await idempotency.answer(request, key, created, status_code=200)


@router.post(
    "/manage_experiment",
    response_model=ExperimentStateChanged,
    responses={
        400: {"description": "The experiment's state does not allow this action."},
        **_NOT_FOUND,
        **_TOO_MANY,
    },
)
async def manage_experiment(
    state: Annotated[Literal["start", "pause", "stop"], Query(description="What to do.")],
    experiment_id: ExperimentIdQuery,
    jobs: JobsDep,
    limit: ExperimentsLimitDep,
) -> ExperimentStateChanged:
    try:
        job = await jobs.act(KIND, experiment_id, Action(state), limit=limit)
    except InvalidTransition as exc:
        raise HTTPException(status_code=400, detail=transition_detail(exc)) from exc
    return ExperimentStateChanged(experiment_id=job.id, state=job.state)


# The answers are streamed (see latlab.api.streaming); response_model documents their shape.
@router.get("/result_experiment", response_model=Experiment, responses=_NOT_FOUND)
async def result_experiment(
    experiment_id: ExperimentIdQuery, experiments: ExperimentsDep
) -> Response:
    """The experiment with every result (the v1 API pages them)."""
    job = await experiments.get(experiment_id)  # before streaming: an unknown id is a 404
    return StreamingResponse(experiment_json(experiments, job), media_type="application/json")


@router.get("/list_experiments", response_model=list[Experiment])
async def list_experiments(experiments: ExperimentsDep) -> Response:
    """Every experiment with its results, as the original answered."""
    return StreamingResponse(experiments_json(experiments), media_type="application/json")
