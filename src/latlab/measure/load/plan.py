"""What a load run sends, checked once, and its split into worker shares.

A :class:`LoadPlan` is the whole run (totals); :func:`split` gives each worker process its
share so that totals stay exact: ``-n 10000`` over three workers is 3334 + 3333 + 3333.
"""

from __future__ import annotations

import re
import resource
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from latlab.measure.request import RequestError, RequestSpec, Url
from latlab.measure.request import parse_expect_status as parse_status_list

if TYPE_CHECKING:
    from latlab.settings import Settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DEFAULT_DURATION_S = 10.0
MIN_RATE = 0.001  # below it the schedule's floating-point times stop being meaningful
FD_MARGIN = 64  # descriptors a worker needs besides its connections


class PlanError(ValueError):
    """A load run that cannot be run as asked; the message names the option."""


def parse_duration(text: str | float, option: str = "duration") -> float:
    """Seconds from ``"250ms"``, ``"30s"``, ``"2m"``, ``"1h"`` or a bare number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise PlanError(f"{option}: {text!r} is not a duration like 500ms, 30s, 2m or 1h")
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if not seconds > 0 or seconds == float("inf"):
        raise PlanError(f"{option} must be positive, not {text!r}")
    return seconds


def parse_expect_status(text: str) -> frozenset[int]:
    """``"200,201"``, ``"2xx"`` or a mix: the statuses that count as success."""
    try:
        return parse_status_list(text).codes
    except RequestError as exc:
        raise PlanError(f"expect-status: {exc}") from None


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """One run, in totals. Exactly one of ``requests`` and ``duration_s`` is set."""

    url: Url
    request: RequestSpec = field(default_factory=RequestSpec)
    connections: int = 64
    requests: int | None = None
    duration_s: float | None = DEFAULT_DURATION_S
    rate: float | None = None  # requests/s over the whole run: the open model
    workers: int = 1
    timeout_s: float = 10.0
    expect_status: frozenset[int] | None = None  # None: any status below 400
    warmup_s: float = 0.0
    verify_tls: bool = True
    ca_file: str | None = None
    # A worker's share of a run: its first connection's index among the run's ``share_of``
    # (so that the open model spreads every worker's sends over one even schedule).
    share_start: int = 0
    share_of: int | None = None

    def __post_init__(self) -> None:
        for name in ("connections", "workers"):
            if getattr(self, name) < 1:
                raise PlanError(f"{name} must be at least 1")
        if (self.requests is None) == (self.duration_s is None):
            raise PlanError("give either requests or duration, not both")
        if self.requests is not None and self.requests < 1:
            raise PlanError("requests must be at least 1")
        if self.duration_s is not None and not self.duration_s > 0:
            raise PlanError("duration must be positive")
        if self.rate is not None and not MIN_RATE <= self.rate < float("inf"):
            raise PlanError(f"rate must be a finite number of at least {MIN_RATE} requests/s")
        if not self.timeout_s > 0 or self.warmup_s < 0:
            raise PlanError("timeout must be positive and warmup not negative")

    @property
    def open_model(self) -> bool:
        return self.rate is not None

    def encoded_request(self) -> bytes:
        try:
            return self.request.encode(self.url, keep_alive=True)
        except RequestError as exc:  # pragma: no cover - RequestSpec checked its parts already
            raise PlanError(str(exc)) from exc

    def succeeded(self, status: int) -> bool:
        if self.expect_status is None:
            return status < 400
        return status in self.expect_status


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers that differ by at most one, largest first."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def split(plan: LoadPlan) -> list[LoadPlan]:
    """Each worker's share: connections, requests and rate divided, nothing lost.

    Fewer workers than asked when there are fewer connections (or requests) than workers:
    a worker with nothing to do is not started.
    """
    workers = min(plan.workers, plan.connections, plan.requests or plan.connections)
    connections = shares(plan.connections, workers)
    starts = [sum(connections[:index]) for index in range(workers)]
    requests = shares(plan.requests, workers) if plan.requests is not None else [None] * workers
    return [
        replace(
            plan,
            workers=1,
            connections=connections[index],
            requests=requests[index],
            rate=None if plan.rate is None else plan.rate * connections[index] / plan.connections,
            share_start=starts[index],
            share_of=plan.connections,
        )
        for index in range(workers)
    ]


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """The most a load run may ask for (``LATLAB_LOAD_MAX_*``)."""

    max_connections: int = 10_000
    max_rate: float = 1_000_000
    max_duration_s: float = 86_400
    max_workers: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> LoadLimits:
        return cls(
            settings.load_max_connections,
            settings.load_max_rate,
            settings.load_max_duration_s,
            settings.load_max_workers,
        )

    def check(self, plan: LoadPlan) -> None:
        """Raise :class:`PlanError` naming the first option past its limit."""
        duration_s = (plan.duration_s or 0) + plan.warmup_s
        over = [
            ("connections", plan.connections, self.max_connections, "CONNECTIONS"),
            ("rate", plan.rate or 0, self.max_rate, "RATE"),
            ("duration", duration_s, self.max_duration_s, "DURATION_S"),
            ("workers", plan.workers, self.max_workers, "WORKERS"),
        ]
        for name, value, limit, setting in over:
            if value > limit:
                raise PlanError(
                    f"{name} must be at most {limit:g} (LATLAB_LOAD_MAX_{setting}), not {value:g}"
                )
        check_fd_limit(plan)


def check_fd_limit(plan: LoadPlan) -> None:
    """Refuse more connections per worker than a process may open (the hard
    ``RLIMIT_NOFILE``, to which a worker lifts its soft one): they would fail as errors."""
    most = max(share.connections for share in split(plan)) + FD_MARGIN
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and most > hard:
        raise PlanError(
            f"connections: {most - FD_MARGIN} per worker is more than this machine lets one "
            f"process open ({hard} files); use more workers or raise the limit (ulimit -n)"
        )
