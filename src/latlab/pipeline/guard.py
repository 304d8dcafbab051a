"""The client service's guard: the control API's Host, token and Origin rules.

``GET /`` on the client sends traffic, so a web page must not be able to trigger it (an
``<img>`` tag would): a cross-site request gets 403, and without a token only a loopback or
listed ``Host`` is served (DNS rebinding gets 400); with ``LATLAB_API_TOKEN`` set, the
request must carry ``Authorization: Bearer <token>`` (401 otherwise).
"""

from __future__ import annotations

import hmac
from http import HTTPStatus

from pydantic import SecretStr

from latlab.serving.hosts import HostCheck, same_origin
from latlab.serving.wire import Request, Response, detail, json_response

CROSS_SITE_FETCHES = frozenset({b"cross-site", b"same-site"})
HOST_REFUSED = detail(HTTPStatus.BAD_REQUEST, "host not allowed")
CROSS_SITE = detail(HTTPStatus.FORBIDDEN, "cross-site request refused")
NO_TOKEN = json_response(
    HTTPStatus.UNAUTHORIZED,
    {"detail": "a valid API token is needed: send Authorization: Bearer <token>"},
    [("www-authenticate", "Bearer")],
)


class TrafficGuard:
    def __init__(self, token: SecretStr | None, allowed_hosts: list[str]) -> None:
        value = token.get_secret_value() if token is not None else ""
        self._token = value.encode() or None  # an empty token is none, as for the API
        self._host_allowed = HostCheck(allowed_hosts)

    def refusal(self, request: Request) -> Response | None:
        """The answer that refuses ``request``, or None to let it through."""
        headers = request.headers or {}
        host = headers.get(b"host", b"").decode("latin-1") or None
        check_host = self._token is None or bool(self._host_allowed.allowed_hosts)
        if check_host and not self._host_allowed(host):
            return HOST_REFUSED
        if self._token is not None and not self._authorized(headers):
            return NO_TOKEN
        if headers.get(b"sec-fetch-site", b"").lower() in CROSS_SITE_FETCHES:
            return CROSS_SITE
        origin = headers.get(b"origin")
        if origin is not None and not same_origin(origin.decode("latin-1"), host):
            return CROSS_SITE
        return None

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self._token is not None
        scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
        given = credentials.strip()
        return scheme.lower() == b"bearer" and hmac.compare_digest(given, self._token)
