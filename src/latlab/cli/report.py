"""``latlab report experiment|load-run ID -o FILE.html``: a job's report, from a server.

The server builds it (``GET /api/v1/…/{id}/report.html``): one self-contained file that opens
with no network. Exit status 0: written; 1: the server refused (no such job, a wrong token);
2: the file cannot be written; 3: the server cannot be reached.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import httpx

REFUSED, UNWRITABLE, UNREACHABLE = 1, 2, 3
TIMEOUT_S = 120.0  # a report of a million results is built in seconds, not minutes


class ReportKind(StrEnum):
    EXPERIMENT = "experiment"
    LOAD_RUN = "load-run"

    @property
    def route(self) -> str:
        return "experiments" if self is ReportKind.EXPERIMENT else "load-runs"


def _say(message: str) -> None:
    sys.stderr.write(f"latlab report: {message}\n")


def _reason(answer: httpx.Response) -> str:
    if answer.status_code == 401:
        return "the server wants a token: --token, or LATLAB_API_TOKEN"
    try:
        detail = answer.json().get("detail")
    except ValueError:
        detail = None
    return str(detail) if isinstance(detail, str) else answer.reason_phrase


def save_report(kind: ReportKind, job_id: int, out: Path, server: str, token: str | None) -> int:
    """Fetch the report and write it to ``out``; the exit status."""
    url = f"{server.rstrip('/')}/api/v1/{kind.route}/{job_id}/report.html"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(url, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        _say(f"cannot reach {server}: {exc or type(exc).__name__}")
        return UNREACHABLE
    if answer.status_code != httpx.codes.OK:
        _say(f"{kind} {job_id}: {answer.status_code} {_reason(answer)}")
        return REFUSED
    try:
        out.write_bytes(answer.content)
    except OSError as exc:
        _say(f"cannot write {out}: {exc.strerror or exc}")
        return UNWRITABLE
    sys.stdout.write(f"{out}: {kind} {job_id}, {len(answer.content):,} bytes\n")
    return 0
