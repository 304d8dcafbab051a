"""Plain records that cross the storage port. No I/O here."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

T = TypeVar("T")


class JobState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        """Completed, stopped or failed: the job will never run (or record) again."""
        return self in (JobState.COMPLETED, JobState.STOPPED, JobState.FAILED)


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


class Record(Protocol):
    """One record of a job's result stream, of any kind.

    ``kind`` is the kind of job the record belongs to, and names its stream: a checkpoint
    dispatches each record to its kind's table or collection. ``(job_id, seq)`` is the key:
    ``seq`` numbers a job's records from 0 with no gaps, and writing one twice keeps the first.
    """

    kind: ClassVar[str]

    @property
    def job_id(self) -> int: ...

    @property
    def seq(self) -> int: ...


R = TypeVar("R", bound=Record)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of an experiment. ``seq`` numbers probes 0..count-1 with no gaps."""

    kind: ClassVar[str] = "probe"

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
class SiteResult(ProbeResult):
    """One probe of an experiment run at several locations: a result of the series at
    ``location``, a job of kind ``probe_site`` whose ``seq`` numbers that series alone. The
    location is part of the key: one experiment has a series 0..count-1 at each location."""

    kind: ClassVar[str] = "probe_site"

    location: str = ""


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


# The bucket of a histogram that covers the job's whole run; others are minutes since the epoch.
TOTAL_BUCKET = -1


@dataclass(frozen=True, slots=True)
class HistogramUpdate:
    """Replace (upsert) one stored histogram of a job.

    Stored with the checkpoint that carries the job's progress, so that a histogram never
    counts results the store does not hold; ``payload`` is opaque to the store (the caller's
    JSON, up to ~200 KB).
    """

    kind: str
    job_id: int
    bucket: int
    payload: str


def latest_histograms(updates: Iterable[HistogramUpdate]) -> list[HistogramUpdate]:
    """One update per ``(kind, job_id, bucket)``: the last one given wins (they replace)."""
    return list({(u.kind, u.job_id, u.bucket): u for u in updates}.values())


def fenced_histograms(
    updates: Sequence[HistogramUpdate], dropped: Collection[tuple[str, int]]
) -> list[HistogramUpdate]:
    """The updates that still land when the jobs ``dropped`` (``(kind, id)``) failed their fence."""
    return [u for u in updates if (u.kind, u.job_id) not in dropped]


def gone(
    progress: Sequence[ProgressUpdate], found: Collection[tuple[str, int]]
) -> set[tuple[str, int]]:
    """The jobs an update names that the store no longer holds (deleted meanwhile): their
    records and histograms are dropped as fenced-out ones are, never failing the batch."""
    return {(update.kind, update.job_id) for update in progress} - set(found)


def fenced_records(records: Sequence[R], dropped: Collection[tuple[str, int]]) -> list[R]:
    """The records that still land when the jobs ``dropped`` (``(kind, id)``) failed their fence."""
    if not dropped:
        return list(records)
    return [record for record in records if (record.kind, record.job_id) not in dropped]


def by_kind(records: Sequence[R]) -> dict[str, list[R]]:
    """Records grouped by kind (their stream), each group in the order given."""
    groups: dict[str, list[R]] = {}
    for record in records:
        groups.setdefault(record.kind, []).append(record)
    return groups
