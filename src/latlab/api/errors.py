"""Domain errors -> HTTP answers. Validation errors keep FastAPI's 422 shape."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from latlab.jobs.state import InvalidTransition
from latlab.storage import JobNotFound, StoreUnavailable

RETRY_AFTER_S = 1
NOUNS = {"probe": "experiment", "bot": "bot", "load": "load run"}


def noun(kind: str) -> str:
    return NOUNS.get(kind, f"{kind} job")


def not_found_detail(exc: JobNotFound) -> str:
    return f"{noun(exc.kind)} {exc.job_id} not found"


def transition_detail(exc: InvalidTransition) -> str:
    return f"cannot {exc.action} {noun(exc.kind)} {exc.job_id}: it is {exc.state}"


async def _job_not_found(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobNotFound)
    return JSONResponse({"detail": not_found_detail(exc)}, status_code=404)


async def _invalid_transition(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidTransition)
    return JSONResponse({"detail": transition_detail(exc)}, status_code=409)


def _json_safe(value: Any) -> Any:
    """inf and nan (``1e999`` in a JSON body parses to inf) cannot be written back as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def _store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    detail = f"the store is unavailable, nothing was changed; retry shortly ({exc})"
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse({"detail": detail}, status_code=503, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    try:
        detail = _json_safe(jsonable_encoder(exc.errors()))
    except RecursionError:  # an input nested too deep to echo back: name the error only
        inputless = [
            {k: v for k, v in e.items() if k not in ("input", "ctx")} for e in exc.errors()
        ]
        detail = _json_safe(jsonable_encoder(inputless))
    return JSONResponse({"detail": detail}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(JobNotFound, _job_not_found)
    app.add_exception_handler(InvalidTransition, _invalid_transition)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)


def request_validation_error(
    exc: ValidationError,
    source: str,
    renames: dict[str, str] | None = None,
    prefix: Sequence[int | str] = (),
) -> RequestValidationError:
    """Re-raise a model's validation error as a 422 naming the request's own field names.

    ``prefix`` goes between ``source`` and the field: the item's index in a list body.
    """
    renames = renames or {}
    errors: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_context=False):
        loc: Sequence[Any] = error["loc"]
        fields = [renames.get(str(part), part) for part in loc]
        errors.append({**error, "loc": [source, *prefix, *fields]})
    return RequestValidationError(errors)
