"""The CLI as a client of a running server: one way to call it, one way to fail.

Every client command takes ``--server`` (default ``http://127.0.0.1:8000``, env
``LATLAB_SERVER``) and ``--token`` (env ``LATLAB_API_TOKEN``). Exit status 1: the server
answered with an error (its reason is printed); 3: it cannot be reached.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, NoReturn

import httpx
import typer

REFUSED, UNREACHABLE = 1, 3
DEFAULT_SERVER = "http://127.0.0.1:8000"

ServerOption = Annotated[
    str, typer.Option(metavar="URL", envvar="LATLAB_SERVER", help="The LatLab server.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="LATLAB_API_TOKEN",
        show_default=False,
        help="Bearer token the server asks for; prefer the env var (`ps` shows options).",
    ),
]


def fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"latlab: {' '.join(message.split())}\n")
    raise SystemExit(code)


def reason(answer: httpx.Response) -> str:
    """What the server said: its ``detail`` (each field's problem for a 422)."""
    if answer.status_code == 401:
        return "the server wants a token: --token, or LATLAB_API_TOKEN"
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(map(str, e.get('loc', [])[1:]))}: {e.get('msg')}" for e in detail
        )
    return str(detail) if detail else answer.reason_phrase


def _field(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", [])[1:])


class Server:
    """``/api/v1`` of one server, with its token."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout_s)

    def call(self, method: str, path: str, **options: Any) -> Any:
        """The JSON answer (None for a 204); exits 1 on an error answer, 3 when unreachable."""
        try:
            answer = self.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.url}: {exc or type(exc).__name__}", UNREACHABLE)
        if answer.is_error:
            fail(f"{method} {path}: {answer.status_code} {reason(answer)}", REFUSED)
        return None if answer.status_code == httpx.codes.NO_CONTENT else answer.json()

    def close(self) -> None:
        self.http.close()
