"""Domain errors -> HTTP answers. Validation errors keep FastAPI's 422 shape."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from latlab.jobs.quota import QuotaExceeded
from latlab.jobs.state import InvalidTransition
from latlab.storage import JobNotFound, StoreUnavailable

RETRY_AFTER_S = 1


class Problem(BaseModel):
    detail: str = Field(description="What was wrong, and what to do about it.")


# What the middleware and the body parser may answer on any route (documented once, app-wide).
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Host not allowed, or a body that is not JSON."},
    401: {"model": Problem, "description": "An API token is set and none (or a wrong one) came."},
    403: {"model": Problem, "description": "A state-changing request from another site."},
    413: {"model": Problem, "description": "A body over LATLAB_MAX_BODY_BYTES."},
}
# A 422 answer stays small whatever the body: this many errors, inputs cut to this size.
MAX_ERRORS = 20
MAX_INPUT_CHARS = 100
MAX_INPUT_ITEMS = 10
UNKNOWN_KEYS_NAMED = 10
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
    """What a body may hold but JSON cannot carry back: inf and nan (``1e999`` parses to inf),
    and lone surrogates (``"\\ud800"`` parses to a str UTF-8 cannot encode), written as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def _store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    detail = f"the store is unavailable, nothing was changed; retry shortly ({exc})"
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse({"detail": detail}, status_code=503, headers=headers)


def _short(value: Any, depth: int = 0) -> Any:
    """An input cut down to a few items and characters, to echo back without cost."""
    if isinstance(value, str | bytes) and len(value) > MAX_INPUT_CHARS:
        return f"{value[:MAX_INPUT_CHARS]!s}… ({len(value)} long)"
    if isinstance(value, Mapping | list | tuple):
        if depth >= 2 or len(value) > MAX_INPUT_ITEMS:
            return f"<{type(value).__name__} of {len(value)} items>"
        if isinstance(value, Mapping):
            return {str(k)[:MAX_INPUT_CHARS]: _short(v, depth + 1) for k, v in value.items()}
        return [_short(item, depth + 1) for item in value]
    return value


def _capped(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """The first MAX_ERRORS errors with short inputs, and a last one counting the rest."""
    kept: list[dict[str, Any]] = []
    for error in errors[:MAX_ERRORS]:
        short = dict(error)
        if "input" in short:
            short["input"] = _short(short["input"])
        if "ctx" in short:
            short["ctx"] = _short(short["ctx"])
        kept.append(short)
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        kept.append({"type": "too_many_errors", "loc": [], "msg": f"and {more} more errors"})
    return kept


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _capped(exc.errors())
    try:
        detail = _json_safe(jsonable_encoder(errors))
    except RecursionError:  # an input nested too deep to echo back: name the error only
        inputless = [{k: v for k, v in e.items() if k not in ("input", "ctx")} for e in errors]
        detail = _json_safe(jsonable_encoder(inputless))
    return JSONResponse({"detail": detail}, status_code=422)


async def _quota_exceeded(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaExceeded)
    headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(exc.as_json(), status_code=429, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(JobNotFound, _job_not_found)
    app.add_exception_handler(InvalidTransition, _invalid_transition)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(QuotaExceeded, _quota_exceeded)


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


def unknown_keys_error(
    body: Mapping[str, Any], known: Iterable[str], loc: Sequence[int | str] = ("body",)
) -> RequestValidationError | None:
    """One error naming the first few keys of ``body`` not in ``known``, or None.

    Checked before a model sees the body: a model reports each unknown key on its own, which
    for ~90,000 keys (1 MiB of JSON) took seconds and a 9 MB answer.
    """
    names = frozenset(known)
    unknown = [key for key in body if key not in names]
    if not unknown:
        return None
    named = [str(key)[:MAX_INPUT_CHARS] for key in unknown[:UNKNOWN_KEYS_NAMED]]
    more = f" and {len(unknown) - len(named)} more" if len(unknown) > len(named) else ""
    message = f"Extra inputs are not permitted: {', '.join(named)}{more}"
    error = {"type": "extra_forbidden", "loc": list(loc), "msg": message, "input": named}
    return RequestValidationError([error])
