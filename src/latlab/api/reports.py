"""The answer of the ``report.html`` routes: the report, under its own policy, or a 503."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status
from fastapi.responses import HTMLResponse

from latlab.web.reports import REPORT_POLICY, ReportUnavailable, render


def report_response(title: str, kind: str, data: dict[str, Any]) -> HTMLResponse:
    try:
        html = render(kind, title, data)
    except ReportUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    name = title.lower().replace(" ", "-")
    headers = {
        "Content-Security-Policy": REPORT_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{name}-report.html"',
    }
    return HTMLResponse(html, headers=headers)
