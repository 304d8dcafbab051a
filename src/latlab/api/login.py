"""``POST /ui/login`` and ``/ui/logout``: the cookie browsers use where they cannot send a header.

Page loads, ``EventSource`` and download links cannot carry ``Authorization: Bearer``; an
HttpOnly ``SameSite=Strict`` cookie can. Its value is an HMAC of the token, so the cookie jar
never holds the token itself, and changing the token logs every browser out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import SecretStr

from latlab.jobs.quota import QuotaExceeded
from latlab.serving.redirects import DASHBOARD, safe_next

SESSION_COOKIE = "latlab_session"
# Per client address: plenty for a person, far too few to guess a token.
LOGIN_ATTEMPTS_PER_MIN = 10
_SESSION_CONTEXT = b"latlab ui session v1"


def configured_token(token: SecretStr | None) -> SecretStr | None:
    """The token to ask for; an empty one is none (its HMAC would be anyone's to compute)."""
    return token if token is not None and token.get_secret_value() else None


def session_value(token: SecretStr) -> str:
    """The cookie value that stands for ``token``."""
    key = token.get_secret_value().encode()
    return hmac.new(key, _SESSION_CONTEXT, hashlib.sha256).hexdigest()


def token_matches(given: bytes, token: SecretStr) -> bool:
    """Constant-time: how long a guess takes says nothing about how much of it was right."""
    return hmac.compare_digest(given, token.get_secret_value().encode())


def _form_fields(body: bytes, content_type: str) -> dict[str, str]:
    """``token`` and ``next`` from a urlencoded form or a JSON object; {} if neither parses."""
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        if not isinstance(parsed, dict):
            return {}
        return {key: value for key, value in parsed.items() if isinstance(value, str)}
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    return {key: values[0] for key, values in fields.items()}


def _too_many_attempts(exc: QuotaExceeded) -> JSONResponse:
    detail = (
        f"too many login attempts from this address: at most {LOGIN_ATTEMPTS_PER_MIN} a "
        "minute; retry later"
    )
    headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse({"detail": detail}, status_code=429, headers=headers)


def login_router(token: SecretStr | None, admit: Callable[[str, int], None]) -> APIRouter:
    """The login routes for the configured ``token`` (unset: they answer 404). ``admit(address,
    per_min)`` counts a login attempt, or raises :class:`QuotaExceeded` past ``per_min``."""
    token = configured_token(token)
    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.post("/login")
    async def login(request: Request) -> Response:
        if token is None:
            return JSONResponse({"detail": "no API token is configured"}, status_code=404)
        try:
            admit(request.client.host if request.client else "", LOGIN_ATTEMPTS_PER_MIN)
        except QuotaExceeded as exc:
            return _too_many_attempts(exc)
        try:
            fields = _form_fields(await request.body(), request.headers.get("content-type", ""))
        except ValueError:  # too many form fields
            fields = {}
        given = fields.get("token", "").encode()
        if not token_matches(given, token):
            return JSONResponse({"detail": "wrong API token"}, status_code=401)
        response = RedirectResponse(safe_next(fields.get("next")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_value(token),
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        response = RedirectResponse(DASHBOARD, status_code=303)
        response.delete_cookie(
            SESSION_COOKIE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    return router
