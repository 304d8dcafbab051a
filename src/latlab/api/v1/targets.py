"""``/api/v1/targets``: the built-in targets' request counts, when they run in this process.

``latlab serve`` runs the targets beside the API (unless ``--no-targets``) and hands the app
a way to read their counters; anything else (``create_app`` alone, ``latlab targets`` in a
process of its own) has none, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter
from pydantic import BaseModel, Field

from latlab.serving.counting import METHODS, STATUS_CLASSES

TargetCounts = Callable[[], Sequence[int]]  # the request cells, in counting.py's layout


class TargetsPublic(BaseModel):
    here: bool = Field(description="Whether the targets run in this process.")
    port: int | None = Field(description="Their port, when they do.")
    requests: int = Field(description="Requests answered since they started.")
    by_method: dict[str, dict[str, int]] = Field(
        description="Answers by method (GET, HEAD, POST, other) and status class."
    )


def targets_router(counts: TargetCounts | None, port: int | None) -> APIRouter:
    router = APIRouter(prefix="/api/v1/targets", tags=["targets"])

    @router.get("", response_model=TargetsPublic)
    async def targets() -> TargetsPublic:
        """The built-in targets' answers so far (all zero when they do not run here)."""
        cells = list(counts()) if counts is not None else []
        by_method = {
            method: {
                status: cells[m * len(STATUS_CLASSES) + s] if cells else 0
                for s, status in enumerate(STATUS_CLASSES)
            }
            for m, method in enumerate(METHODS)
        }
        total = sum(sum(row.values()) for row in by_method.values())
        return TargetsPublic(
            here=counts is not None, port=port, requests=total, by_method=by_method
        )

    return router
