"""Quotas the API applies: running jobs and bots (checked by the job manager), create rate.

The create rate is counted in memory, per process, per client: with an API token configured,
every create has passed the token check (header or login cookie), so all count against the
token; without one, against the client's address. Never against header text no check
verified: each made-up ``Authorization`` would get a fresh quota. A sliding window
over the last minute (two fixed windows, the older weighted by how much of it still
overlaps) keeps a burst at a window's edge from doubling the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from latlab.api.login import configured_token
from latlab.jobs.kinds.bot import KIND as BOT
from latlab.jobs.quota import QuotaExceeded, RunningLimit
from latlab.settings import Settings

WINDOW_S = 60.0
AUTHENTICATED = "authenticated"  # the one token holder: any spelling of it, the login cookie
MAX_CLIENTS = 10_000  # clients remembered; the least recently seen are forgotten first


def running_limit(settings: Settings, kind: str) -> RunningLimit:
    """The running quota of a kind of job, from the settings."""
    if kind == BOT:
        return RunningLimit(settings.max_bots, "LATLAB_MAX_BOTS", "bots")
    return RunningLimit(settings.max_running_jobs, "LATLAB_MAX_RUNNING_JOBS", "experiments")


def client_key(request: Request, settings: Settings) -> str:
    """Who a create is counted against: the checked identity, the token if one is configured
    (the security middleware let only its holders through), else the client's address."""
    if configured_token(settings.api_token) is not None:
        return AUTHENTICATED
    return "address:" + (request.client.host if request.client else "unknown")


@dataclass(slots=True)
class _Windows:
    index: int  # the current window: monotonic seconds // WINDOW_S
    current: int = 0
    previous: int = 0

    def rolled(self, index: int) -> _Windows:
        if index == self.index:
            return self
        previous = self.current if index == self.index + 1 else 0
        return _Windows(index, 0, previous)


class CreateRate:
    """Create requests per client over the last minute, for a few thousand clients at most."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_CLIENTS
    ) -> None:
        self._clock = clock
        self._max_clients = max_clients
        self._clients: dict[str, _Windows] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def admit(self, client: str, per_min: int) -> None:
        """Count one create of ``client``, or raise :class:`QuotaExceeded` (not counted)."""
        now = self._clock()
        index = int(now // WINDOW_S)
        # Popped and put back: the dict stays ordered from least to most recently seen.
        windows = self._clients.pop(client, None) or _Windows(index)
        windows = windows.rolled(index)
        self._clients[client] = windows
        elapsed_s = now - index * WINDOW_S
        if _estimate(windows, elapsed_s) + 1 > per_min:
            raise _rate_exceeded(per_min, _wait_s(windows, elapsed_s, per_min))
        windows.current += 1
        while len(self._clients) > self._max_clients:
            del self._clients[next(iter(self._clients))]


def _estimate(windows: _Windows, elapsed_s: float) -> float:
    return windows.previous * (1 - elapsed_s / WINDOW_S) + windows.current


def _wait_s(windows: _Windows, elapsed_s: float, per_min: int) -> float:
    """How long until one more create fits."""
    room = per_min - 1
    if windows.current <= room:  # the older window's weight has to fade enough
        fade_s = WINDOW_S * (1 - (room - windows.current) / windows.previous)
        return fade_s - elapsed_s
    # This window's own count has to become the older one and fade enough.
    return WINDOW_S - elapsed_s + WINDOW_S * (1 - room / windows.current)


def _rate_exceeded(per_min: int, wait_s: float) -> QuotaExceeded:
    setting = "LATLAB_CREATE_RATE_PER_MIN"
    message = f"too many create requests: at most {per_min} a minute ({setting}); retry later"
    return QuotaExceeded(message, per_min, setting, max(1, math.ceil(wait_s)))
