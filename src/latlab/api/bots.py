"""The original bot service's routes, same paths, codes and shapes.

Fixes over the original: bot ids come from the store (never OS pids), an empty body means 0,
``start_number`` must be an integer, and a bot that died with the server is alive again after
a restart instead of staying "still alive" forever.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request, Response, status
from fastapi.responses import StreamingResponse

from latlab.api.bot_schemas import ActiveBots, BotCreated, BotHistoryEntry
from latlab.api.deps import (
    MAX_ID,
    BotRecordsDep,
    BotsDep,
    BotsLimitDep,
    IdempotencyDep,
    JobsDep,
    SettingsDep,
    count_create,
    known_keys_only,
    location_has_workers,
)
from latlab.api.errors import transition_detail
from latlab.api.idempotency import IdempotencyKey
from latlab.api.streaming import bots_history_json
from latlab.jobs.kinds.bot import KIND, BotSpec
from latlab.jobs.state import Action, InvalidTransition

router = APIRouter(tags=["bots (original API)"])
BotIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Integer id of the bot.")]


@router.post(
    "/start",
    status_code=status.HTTP_201_CREATED,
    response_model=BotCreated,
    responses={429: {"description": "Too many bots running, or too many creates a minute."}},
    dependencies=[Depends(count_create), Depends(known_keys_only(BotSpec))],
)
async def start(
    request: Request,
    jobs: JobsDep,
    idempotency: IdempotencyDep,
    limit: BotsLimitDep,
    settings: SettingsDep,
    spec: Annotated[BotSpec | None, Body(description="Optional; no body counts from 0.")] = None,
    key: IdempotencyKey = None,
) -> Response:
    """Start a bot that prints start_number, start_number + 1, … once a second."""
    location_has_workers(None if spec is None else spec.location, settings)

    async def created() -> BotCreated:
        job = await jobs.create(KIND, (spec or BotSpec()).model_dump(), start=True, limit=limit)
        return BotCreated(bot_id=job.id)

    return await idempotency.answer(request, key, created)


@router.get(
    "/stop/{bot_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such bot, or it is not running."}},
)
async def stop(bot_id: BotIdPath, jobs: JobsDep) -> Response:
    try:
        await jobs.act(KIND, bot_id, Action.STOP)
    except InvalidTransition as exc:
        raise HTTPException(status_code=404, detail=transition_detail(exc)) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/active_bots", response_model=ActiveBots)
async def active_bots(jobs: JobsDep) -> ActiveBots:
    return ActiveBots(active_bots=await jobs.active_ids(KIND))


# Streamed (see latlab.api.streaming); response_model documents its shape.
@router.get("/bots_history", response_model=list[BotHistoryEntry])
async def bots_history(records: BotRecordsDep, bots: BotsDep) -> Response:
    """Every bot that ran, in the order they started."""
    return StreamingResponse(bots_history_json(records, bots), media_type="application/json")
