"""Liveness and readiness in one: the store must answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from latlab.api.deps import StoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(store: StoreDep) -> JSONResponse:
    try:
        await store.ping()
    except Exception as exc:  # any failure to reach the store means "not ready"
        return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok", "store": "ok"})
