"""Who may drive the API: the Host check, the API token and the Origin check, in that order.

A pure ASGI middleware (no ``BaseHTTPMiddleware``: it would add a task and a copy per request).

- Host (DNS rebinding): without a token, or whenever ``allowed_hosts`` is set, the ``Host``
  must be a loopback name/address or listed, else 400.
- Token: with ``api_token`` set, every route but health, the docs and the dashboard needs
  ``Authorization: Bearer <token>`` or the login cookie, else 401.
- Origin (CSRF), always: a state-changing request from a foreign page gets 403.
"""

from __future__ import annotations

import hmac
import re

from pydantic import SecretStr
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from latlab.api.login import SESSION_COOKIE, configured_token, session_value, token_matches
from latlab.serving.hosts import HostCheck, same_origin
from latlab.settings import Settings

# Reachable without the token: health checks and the API docs (pages, schema, their assets).
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/docs",
        "/docs/oauth2-redirect",
        "/apidocs",
        "/apidocs/",
        "/redoc",
        "/openapi.json",
        "/ui",
        "/",  # only a redirect to /ui/ (or a 404)
    }
)
# The docs' files, and the dashboard: its pages hold no data (their scripts read the API,
# which asks for the token, and send a browser to /ui/login on a 401), so a link from another
# site, which arrives without the SameSite=Strict cookie, still opens the page.
PUBLIC_PREFIXES = ("/docs/assets/", "/ui/")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The GET routes that change state or send traffic (an <img> tag can call them), at the root
# and under /api: they get the Origin check like any POST.
STATE_CHANGING_GETS = re.compile(r"^(?:/api)?/(?:stop/[^/]*|test-latency)/?$")

CROSS_SITE_FETCHES = frozenset({"cross-site", "same-site"})
CHECKED_HEADERS = frozenset({b"host", b"authorization", b"cookie", b"origin", b"sec-fetch-site"})


def changes_state(method: str, path: str) -> bool:
    return method not in SAFE_METHODS or STATE_CHANGING_GETS.match(path) is not None


def _refusal(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


class SecurityMiddleware:
    """Refuses, before any route runs, what the Host, token and Origin checks do not allow."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.token: SecretStr | None = configured_token(settings.api_token)
        self.host_allowed = HostCheck(settings.allowed_hosts)
        self.check_host = self.token is None or bool(self.host_allowed.allowed_hosts)
        self.session = None if self.token is None else session_value(self.token).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> JSONResponse | None:
        headers = _checked_headers(scope)
        if self.check_host and not self.host_allowed(headers.get("host")):
            return _refusal(400, "host not allowed")
        path: str = scope["path"]
        if not self.authorized(headers, path):
            detail = "a valid API token is needed: send Authorization: Bearer <token>, or log in"
            return _refusal(401, detail, {"WWW-Authenticate": "Bearer"})
        if changes_state(scope["method"], path) and _cross_site(headers):
            return _refusal(403, "cross-site request refused: send it from LatLab's own origin")
        return None

    def authorized(self, headers: dict[str, str], path: str) -> bool:
        if self.token is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return token_matches(credentials.strip().encode("latin-1"), self.token)
        cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
        assert self.session is not None
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.session)


def _checked_headers(scope: Scope) -> dict[str, str]:
    """The few headers the checks read, in one pass (ASGI names are lowercase already).

    The first of repeated headers, as Starlette's ``Headers.get`` reads them: the checks judge
    the same ``Host`` the routes see.
    """
    picked: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in CHECKED_HEADERS:
            picked.setdefault(name.decode(), value.decode("latin-1"))
    return picked


def _cross_site(headers: dict[str, str]) -> bool:
    if headers.get("sec-fetch-site", "").lower() in CROSS_SITE_FETCHES:
        return True
    origin = headers.get("origin")
    return origin is not None and not same_origin(origin, headers.get("host"))
