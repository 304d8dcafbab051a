"""Where a browser may be sent after logging in: a dashboard page of this site, nothing else.

Not any same-site path: the redirect (and the login page's script after it) is a GET from
this origin, which the Origin check lets through, and some GETs act (``/stop/{id}`` stops a
bot, ``/test-latency`` sends a probe). A link to ``/ui/login?next=/stop/3`` must not stop a
bot for whoever logs in. Pages under ``/ui/`` only read.
"""

from __future__ import annotations

from urllib.parse import unquote

DASHBOARD = "/ui/"
_FORBIDDEN = frozenset("\\\r\n\t")


def safe_next(value: str | None) -> str:
    """``value`` if it is a path under ``/ui/`` (no scheme, host, dot segment or control
    character, percent-encoded or not: a browser decodes ``%2e%2e`` to ``..``); else
    ``/ui/``."""
    if not value or not value.startswith(DASHBOARD) or not value.isprintable():
        return DASHBOARD
    path = value.split("?", 1)[0]
    for seen in (path, unquote(path)):
        if _FORBIDDEN & set(seen) or not seen.isprintable():
            return DASHBOARD
        if any(segment in (".", "..") for segment in seen.split("/")):
            return DASHBOARD
    return value
