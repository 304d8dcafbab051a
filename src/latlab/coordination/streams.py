"""The names of the dispatch streams: a lane (``heavy`` or ``light``) and a place, which is a
worker location, ``any``, or one worker's own address."""

from __future__ import annotations

from typing import Literal, get_args

Lane = Literal["heavy", "light"]


def lane_of(kind: str) -> Lane:
    return "light" if kind == "bot" else "heavy"


def stream_name(prefix: str, lane: Lane, location: str) -> str:
    return f"{prefix}:dispatch:{lane}:{location}"


def worker_address(worker_id: str) -> str:
    """The "location" only the worker ``worker_id`` reads: a job started again goes back to
    the worker that ran it (its load processes wait there). No location has an ``@``."""
    return f"@{worker_id}"


def worker_streams(prefix: str, worker_id: str) -> list[str]:
    """The streams of a worker's own address (dropped when it leaves the fleet)."""
    return [stream_name(prefix, lane, worker_address(worker_id)) for lane in get_args(Lane)]
