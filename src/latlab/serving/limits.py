"""What one server lets a client hold: request sizes, time, answers in flight, connections.

``ServerLimits`` is a plain value the service fills from its own settings (the kit reads no
settings). The file-descriptor helpers let a process use the hard ``RLIMIT_NOFILE`` and keep
its connections below it, with a reserve for whatever else the process opens (the control
API's own connections, the store, log files).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

# Longer request targets and bodies are refused rather than buffered without bound.
MAX_URL_BYTES = 8192
MAX_BODY_BYTES = 1024 * 1024
# A client pipelining more unanswered requests than this waits until answers leave.
MAX_PENDING = 64
# File descriptors kept for the rest of the process: at least this many, or a quarter.
MIN_FD_RESERVE = 128


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Defaults are those of a real server (nginx, uvicorn); ``None``: no connection cap."""

    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    max_connections: int | None = None
    max_pending: int = MAX_PENDING

    @property
    def tick_s(self) -> float:
        """How often the open connections are looked at: a timeout is met to within a tick
        (a quarter of the shorter one, at most a second)."""
        return min(1.0, self.header_timeout_s / 4, self.idle_timeout_s / 4)


def raise_fd_limit() -> int:
    """Lift the soft ``RLIMIT_NOFILE`` to the hard one (the common 1024 is a soft limit the
    process may raise itself); the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)  # the usual kernel ceiling (fs.nr_open)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # a container that caps below the reported hard limit
            pass
    return int(soft)


def connection_cap(fd_limit: int) -> int:
    """Connections one server may hold under ``fd_limit``: the rest is the reserve."""
    return max(1, fd_limit - max(MIN_FD_RESERVE, fd_limit // 4))
