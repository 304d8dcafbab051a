"""Bot shapes: the original service's and the v1 API's."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from latlab.api.waiting import WAITING_FOR, waiting_for
from latlab.storage import JobRecord, JobState

STILL_ALIVE = "still alive"


class BotCreated(BaseModel):
    bot_id: int


class ActiveBots(BaseModel):
    active_bots: list[int] = Field(description="Ids of running bots, newest first.")


def ended_at(job: JobRecord) -> datetime | None:
    ended = job.progress.get("ended_at")
    return None if ended is None else datetime.fromisoformat(str(ended))


def duration_s(job: JobRecord) -> float:
    end = ended_at(job) or datetime.now(UTC)
    return round((end - job.created_at).total_seconds(), 3)


class BotHistoryEntry(BaseModel):
    bot_id: int
    start_number: int
    start: datetime
    end: datetime | Literal["still alive"]
    duration_s: float
    last_number: int | None

    @classmethod
    def of(cls, job: JobRecord, last_number: int | None) -> BotHistoryEntry:
        return cls(
            bot_id=job.id,
            start_number=int(job.spec["start_number"]),
            start=job.created_at,
            end=ended_at(job) or STILL_ALIVE,
            duration_s=duration_s(job),
            last_number=last_number,
        )


class BotPublic(BaseModel):
    id: int
    state: JobState
    start_number: int
    last_number: int | None = Field(description="Last number printed (null before the first).")
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    location: str | None = Field(None, description="Where it runs, if pinned to a location.")
    waiting_for: str | None = WAITING_FOR

    @classmethod
    def of(
        cls, job: JobRecord, last_number: int | None, live_locations: Collection[str] | None = None
    ) -> BotPublic:
        """``live_locations``: where workers are up (None: no workers in this deployment)."""
        location = job.spec.get("location")
        return cls(
            id=job.id,
            state=job.state,
            start_number=int(job.spec["start_number"]),
            last_number=last_number,
            started_at=job.created_at,
            ended_at=ended_at(job),
            duration_s=duration_s(job),
            location=None if location is None else str(location),
            waiting_for=waiting_for(job, live_locations),
        )


class BotsPublic(BaseModel):
    data: list[BotPublic]
    count: int
    offset: int
    limit: int
