"""Plain records that cross the storage port. No I/O here."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
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
    """New checkpoint values for one job; merged into the keys it already has.

    ``owner`` fences the update: when set, it applies only while the job's ``progress["fleet"]``
    is ``owner`` or not set yet (see ``Store.checkpoint``). ``None`` applies unconditionally:
    that is how a claim names a new owner.
    """

    kind: str
    job_id: int
    values: dict[str, Any]
    owner: str | None = None

    def applies_to(self, progress: Mapping[str, Any]) -> bool:
        """Does this update pass the fence of a job whose checkpoint is ``progress``?"""
        if self.owner is None:
            return True
        fleet = progress.get("fleet")
        return fleet is None or fleet == self.owner


def fenced_results(results: Sequence[ProbeResult], dropped: Collection[int]) -> list[ProbeResult]:
    """The results that still land when the probe jobs ``dropped`` failed their fence."""
    if not dropped:
        return list(results)
    return [result for result in results if result.job_id not in dropped]
