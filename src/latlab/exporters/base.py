"""The exporters port: what the event seam tells every sink, and what a sink must do.

A sink is told of measurements after they are stored and of job state changes after they
happened. Its methods run on the event loop, inline: they must return at once (queue the
work, bump a counter) and never raise for ordinary trouble (a sink that is away keeps a
bounded backlog or drops). The seam logs and skips a sink that raises anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from latlab.storage.records import JobState, ProbeResult

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "error")


def status_class(result: ProbeResult) -> str:
    """``2xx`` … ``5xx`` for a response, ``error`` for a probe that got none."""
    if result.error is not None or not 100 <= result.status_code <= 599:
        return "error"
    return STATUS_CLASSES[result.status_code // 100 - 1]


@dataclass(frozen=True, slots=True)
class ProbeTags:
    """What an experiment measures, as exporters label its points."""

    host: str
    port: int
    path: str
    location: str = ""  # the series' location, of an experiment run at several


@dataclass(frozen=True, slots=True)
class StateChange:
    """A job moved to ``state`` (``created`` when it was created) at ``at`` (UTC)."""

    kind: str
    job_id: int
    state: JobState
    error: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class LoadTags:
    """What a load run loads, as exporters label its points."""

    host: str
    port: int
    path: str
    method: str = "GET"


@dataclass(frozen=True, slots=True)
class LoadSecond:
    """One second of a load run, merged over its workers and stored already."""

    run_id: int
    second: int  # from 0, counted from the end of the warm-up
    at: datetime  # when the second began (UTC)
    requests: int
    errors: int
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class Sink(Protocol):
    def probed(self, experiment_id: int, tags: ProbeTags, results: Sequence[ProbeResult]) -> None:
        """Results of one experiment, stored already, in ``seq`` order."""
        ...

    def load_second(self, tags: LoadTags, second: LoadSecond) -> None:
        """A load run's second, stored already; seconds of a run come in order."""
        ...

    def state_changed(self, change: StateChange) -> None: ...

    def deleted(self, kind: str, job_id: int) -> None:
        """The job and its records are gone: forget what is kept about it."""
        ...


class SinkBase:
    """No-op defaults: a sink overrides what it cares about."""

    def probed(self, experiment_id: int, tags: ProbeTags, results: Sequence[ProbeResult]) -> None:
        return None

    def load_second(self, tags: LoadTags, second: LoadSecond) -> None:
        return None

    def state_changed(self, change: StateChange) -> None:
        return None

    def deleted(self, kind: str, job_id: int) -> None:
        return None
