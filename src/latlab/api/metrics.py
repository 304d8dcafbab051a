"""``GET /metrics``: the control API's Prometheus page (probe latencies, jobs, the writer)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from latlab.api.deps import app_state

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    """Every probe result per experiment and status class, jobs by state, the batch writer."""
    body, content_type = await app_state(request).metrics.render()
    return Response(body, media_type=content_type)
