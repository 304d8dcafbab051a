"""The worker fleet: ``GET /api/v1/workers`` (empty without Redis)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from latlab.api.deps import app_state
from latlab.api.errors import Problem

router = APIRouter(prefix="/api/v1/workers", tags=["workers"])
RETRY_AFTER_S = 1


class JobRef(BaseModel):
    kind: str
    id: int


class WorkerPublic(BaseModel):
    id: str = Field(description="The worker's owner id (new at each start).")
    location: str
    capacity: int = Field(description="Concurrent experiments and load runs it takes.")
    jobs: list[JobRef] = Field(description="The jobs running on it.")
    last_heartbeat: datetime


class WorkersPublic(BaseModel):
    data: list[WorkerPublic]


@router.get(
    "",
    response_model=WorkersPublic,
    responses={503: {"model": Problem, "description": "Redis did not answer."}},
)
async def list_workers(request: Request) -> WorkersPublic:
    """Live workers, by id: those whose heartbeat is younger than their lease."""
    fleet = app_state(request).fleet
    if fleet is None:
        return WorkersPublic(data=[])
    try:
        workers = await fleet.refresh()
    except Exception as exc:  # Redis away: the fleet cannot be known from here
        detail = f"Redis is unavailable, the workers are unknown; retry shortly ({exc})"
        raise HTTPException(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)}) from exc
    return WorkersPublic(
        data=[
            WorkerPublic(
                id=worker.id,
                location=worker.location,
                capacity=worker.capacity,
                jobs=[JobRef(kind=kind, id=job_id) for kind, job_id in worker.jobs],
                last_heartbeat=worker.last_heartbeat,
            )
            for worker in workers
        ]
    )
