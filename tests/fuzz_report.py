"""What tests/fuzz_api.py reports: the failing request, the answer, and the server's traceback."""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any

import schemathesis
from schemathesis.errors import FailureGroup
from starlette.types import ASGIApp, Receive, Scope, Send

FuzzCase = schemathesis.Case[Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]


class ServerErrors:
    """Tracebacks of exceptions that escaped the app, for the request that caused them.

    The fuzzer sends one request at a time, so the latest traceback belongs to the latest request.
    Starlette sends the 500 before it re-raises: after a 5xx, wait for the app call to return.
    """

    def __init__(self) -> None:
        self._tracebacks: list[str] = []
        self._returned = threading.Event()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            except Exception:
                self._tracebacks.append(traceback.format_exc())
                raise
            finally:
                if scope["type"] == "http":
                    self._returned.set()

        return recording

    def clear(self) -> None:
        self._tracebacks.clear()
        self._returned.clear()

    def latest(self, wait_s: float = 0.0) -> str | None:
        """The traceback of the current request, if any; waits up to ``wait_s`` for its end."""
        self._returned.wait(wait_s)
        return self._tracebacks[-1] if self._tracebacks else None


@dataclass(frozen=True)
class Finding:
    operation: str
    mode: str
    report: str
    server_traceback: str | None


def finding(operation: str, mode: str, last: LastExchange | None, exc: BaseException) -> Finding:
    """A finding from the exception Hypothesis re-raised and the (shrunk) exchange behind it.

    Schemathesis' own report names the check, the status, the body and a curl command; any
    other exception (a timeout, a dropped connection) gets the curl command added here.
    """
    if isinstance(exc, FailureGroup):
        report = exc.message.rstrip()
    else:
        request = "" if last is None else f"\nrequest: {last.case.as_curl_command()}"
        report = f"{type(exc).__name__}: {exc}{request}"
    return Finding(operation, mode, report, None if last is None else last.server_traceback)


@dataclass(frozen=True)
class LastExchange:
    case: FuzzCase
    server_traceback: str | None = None


def describe(found: Finding) -> str:
    lines = [f"=== {found.operation} ({found.mode} data)", found.report]
    if found.server_traceback:
        lines.append(f"server traceback:\n{found.server_traceback}")
    return "\n".join(lines)
