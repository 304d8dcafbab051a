"""REST API for bots: ``/api/v1/bots``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from latlab.api.bot_schemas import BotPublic, BotsPublic
from latlab.api.deps import (
    MAX_ID,
    BotRecordsDep,
    BotsDep,
    BotsLimitDep,
    IdempotencyDep,
    JobsDep,
    Limit,
    LiveLocationsDep,
    Offset,
    SettingsDep,
    count_create,
    known_keys_only,
    location_has_workers,
)
from latlab.api.idempotency import IdempotencyKey
from latlab.jobs.kinds.bot import KIND, BotSpec
from latlab.jobs.state import Action
from latlab.storage import JobState

router = APIRouter(prefix="/api/v1/bots", tags=["bots"])
BotIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Integer id of the bot.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No bot with this id."}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BotPublic,
    responses={429: {"description": "Too many bots running, or too many creates a minute."}},
    dependencies=[Depends(count_create), Depends(known_keys_only(BotSpec))],
)
async def create(
    request: Request,
    spec: BotSpec,
    jobs: JobsDep,
    bots: BotsDep,
    idempotency: IdempotencyDep,
    limit: BotsLimitDep,
    settings: SettingsDep,
    locations: LiveLocationsDep,
    key: IdempotencyKey = None,
) -> Response:
    location_has_workers(spec.location, settings)

    async def created() -> BotPublic:
        job = await jobs.create(KIND, spec.model_dump(), start=True, limit=limit)
        return BotPublic.of(job, await bots.last_number(job), locations)

    return await idempotency.answer(request, key, created)


@router.get("", response_model=BotsPublic)
async def list_bots(
    records: BotRecordsDep,
    bots: BotsDep,
    locations: LiveLocationsDep,
    state: Annotated[JobState | None, Query(description="Only bots in this state.")] = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> BotsPublic:
    page = await records.page(state, offset=offset, limit=limit)
    data = [BotPublic.of(job, await bots.last_number(job), locations) for job in page.items]
    return BotsPublic(data=data, count=page.total, offset=offset, limit=limit)


@router.get("/{bot_id}", response_model=BotPublic, responses=_NOT_FOUND)
async def get(
    bot_id: BotIdPath, records: BotRecordsDep, bots: BotsDep, locations: LiveLocationsDep
) -> BotPublic:
    job = await records.get(bot_id)
    return BotPublic.of(job, await bots.last_number(job), locations)


@router.post(
    "/{bot_id}/stop",
    response_model=BotPublic,
    responses={**_NOT_FOUND, 409: {"description": "The bot is not running."}},
)
async def stop(bot_id: BotIdPath, jobs: JobsDep, bots: BotsDep) -> BotPublic:
    job = await jobs.act(KIND, bot_id, Action.STOP)
    return BotPublic.of(job, await bots.last_number(job))
