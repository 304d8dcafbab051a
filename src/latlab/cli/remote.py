"""The CLI as a client of a running server: one way to call it, one way to fail.

Every client command takes ``--server`` (default ``http://127.0.0.1:8000``, env
``LATLAB_SERVER``) and ``--token`` (env ``LATLAB_API_TOKEN``). Exit status 1: the server
answered with an error (its reason is printed); 3: it cannot be reached.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

REFUSED, USAGE, UNREACHABLE = 1, 2, 3
DEFAULT_SERVER = "http://127.0.0.1:8000"

ServerOption = Annotated[
    str, typer.Option(metavar="URL", envvar="LATLAB_SERVER", help="The LatLab server.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="LATLAB_API_TOKEN",
        show_default=False,
        help="Bearer token the server asks for; prefer the env var (`ps` shows options) "
        "[default none].",
    ),
]


JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON.")]
Describe = Callable[[Any], Table]  # what the server answered -> the table shown


def show(document: Any, as_json: bool, table: Table | None = None) -> None:
    """The server's JSON (``--json``), or ``table``."""
    console = Console()
    if as_json or table is None:
        console.print_json(json.dumps(document))
    else:
        console.print(table)


def add_listing(app: typer.Typer, route: str, plural: str, table: Describe) -> None:
    """``ls [--state S]``: ``GET /{route}``, up to 1,000, oldest first."""

    def list_jobs(
        state: Annotated[
            str | None, typer.Option(help="Only in this state [default: any].")
        ] = None,
        as_json: JsonOption = False,
        server: ServerOption = DEFAULT_SERVER,
        token: TokenOption = None,
    ) -> None:
        params = {"limit": 1000, **({"state": state} if state else {})}
        page = Server(server, token).call("GET", f"/{route}", params=params)
        show(page, as_json, table(page["data"]))

    list_jobs.__doc__ = f"The {plural} (up to 1,000, oldest first)."
    app.command("ls")(list_jobs)


def client_app(what: str) -> typer.Typer:
    """A command group that drives ``what`` on a running server."""
    return typer.Typer(
        help=f"{what} on a running server (--server, default {DEFAULT_SERVER}).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )


def id_argument(noun: str) -> Any:
    """The ``ID`` argument of a command about one ``noun``."""
    return typer.Argument(metavar="ID", min=1, help=f"The {noun}'s id.")


def add_actions(app: typer.Typer, route: str, noun: str, table: Describe) -> None:
    """``start``, ``pause``, ``resume`` and ``stop`` of one job: ``POST /{route}/{id}/{action}``."""
    for action in ("start", "pause", "resume", "stop"):
        app.command(action)(_action(route, noun, action, table))


def _action(route: str, noun: str, action: str, table: Describe) -> Callable[..., None]:
    # A default, not an annotation: annotations are read later, where ``noun`` is unknown.
    job_argument = id_argument(noun)

    def command(
        job_id: int = job_argument,
        as_json: JsonOption = False,
        server: ServerOption = DEFAULT_SERVER,
        token: TokenOption = None,
    ) -> None:
        done = Server(server, token).call("POST", f"/{route}/{job_id}/{action}")
        show(done, as_json, table(done))

    command.__doc__ = f"{action.capitalize()} the {noun} ID."
    return command


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
    if isinstance(detail, list):  # a 422: each field and what is wrong with it
        return "; ".join(f"{_field(error)}: {error.get('msg')}" for error in detail)
    return str(detail) if detail else answer.reason_phrase


def _has_detail(answer: httpx.Response) -> bool:
    """Whether the answer is LatLab's own problem (JSON with a ``detail``): its reason is
    printed, not taken for a proxy's page."""
    try:
        return bool(answer.json().get("detail"))
    except (ValueError, AttributeError):
        return False


def _field(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", [])[1:])


# A proxy's answers while the server behind it is down, or LatLab's own while its store,
# Redis or chart library is missing: unavailable (exit 3), not refused.
GATEWAY_DOWN = frozenset({502, 503, 504})


def _headers(token: str | None) -> dict[str, str]:
    if not token:
        return {}
    if not (token.isascii() and token.isprintable()):
        # Never echoed: a token read from a file with its line ending would be printed.
        fail("the token has a character a header cannot carry (a line ending?)", USAGE)
    return {"Authorization": f"Bearer {token}"}


class Server:
    """``/api/v1`` of one server, with its token. Exit status 1: the server refused (its
    reason printed); 2: a URL or token that cannot be used; 3: unreachable, or a proxy
    answering for it that it is down."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        try:
            self.http = httpx.Client(
                base_url=f"{self.url}/api/v1", headers=_headers(token), timeout=timeout_s
            )
        except httpx.InvalidURL as exc:
            fail(f"--server {url}: {exc}", USAGE)

    def answer(self, method: str, path: str, **options: Any) -> httpx.Response:
        """The server's successful answer; exits otherwise."""
        try:
            answer = self.http.request(method, path, **options)
        except httpx.InvalidURL as exc:
            fail(f"--server {self.url}: {exc}", USAGE)
        except httpx.TransportError as exc:
            # The class and message of a transport error: never a header (LocalProtocolError
            # would quote one, and the tokens above are checked before any is sent).
            fail(f"cannot reach {self.url}: {type(exc).__name__}: {exc}", UNREACHABLE)
        if answer.status_code in GATEWAY_DOWN:
            # Unavailable either way (exit 3: worth a retry); LatLab's own says why.
            said = reason(answer) if _has_detail(answer) else "from a proxy"
            fail(f"cannot reach {self.url}: {answer.status_code} {said}", UNREACHABLE)
        if not answer.is_success:
            fail(f"{method} {path}: {answer.status_code} {reason(answer)}", REFUSED)
        return answer

    def call(self, method: str, path: str, **options: Any) -> Any:
        """The JSON answer (None for a 204)."""
        answer = self.answer(method, path, **options)
        if answer.status_code == httpx.codes.NO_CONTENT:
            return None
        try:
            return answer.json()
        except ValueError:
            fail(f"{self.url} answered {method} {path} with no JSON: not a LatLab server?", REFUSED)

    def close(self) -> None:
        self.http.close()
