"""Plain records that cross the storage port. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class JobState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job of any kind. ``spec`` is what the user asked for, ``progress`` the checkpoint."""

    id: int
    kind: str
    state: JobState
    spec: dict[str, Any]
    progress: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of an experiment. ``seq`` numbers probes 0..count-1 with no gaps."""

    job_id: int
    seq: int
    status_code: int
    latency_ms: float
    timestamp: datetime
    scheduled_at: datetime
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    dns_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """New checkpoint values for one job; merged into the keys it already has."""

    kind: str
    job_id: int
    values: dict[str, Any]
