"""``latlab report experiment|load-run ID -o FILE.html``: a job's report, from a server.

The server builds it (``GET /api/v1/…/{id}/report.html``): one self-contained file that opens
with no network. Exit status 0: written; 1: the server refused (no such job, a wrong token);
2: the file cannot be written; 3: the server cannot be reached.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

from latlab.cli.remote import Server

UNWRITABLE = 2
TIMEOUT_S = 120.0  # a report of a million results is built in seconds, not minutes


class ReportKind(StrEnum):
    EXPERIMENT = "experiment"
    LOAD_RUN = "load-run"

    @property
    def route(self) -> str:
        return "experiments" if self is ReportKind.EXPERIMENT else "load-runs"


def save_report(kind: ReportKind, job_id: int, out: Path, server: str, token: str | None) -> int:
    """Fetch the report and write it to ``out``; the exit status."""
    api = Server(server, token, timeout_s=TIMEOUT_S)
    try:
        answer = api.answer("GET", f"/{kind.route}/{job_id}/report.html")
    finally:
        api.close()
    try:
        out.write_bytes(answer.content)
    except OSError as exc:
        sys.stderr.write(f"latlab report: cannot write {out}: {exc.strerror or exc}\n")
        return UNWRITABLE
    sys.stdout.write(f"{out}: {kind} {job_id}, {len(answer.content):,} bytes\n")
    return 0
