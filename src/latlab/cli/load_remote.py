"""``latlab load --server URL``: the run made by a LatLab server (and its workers, ``--shards
N``), followed from here with the same view, summary, files and exit codes as a run made here.

The options are checked here first, as for a local run (exit 2, nothing sent), then the
server checks them again. The token is ``LATLAB_API_TOKEN``, as the server's own. The first
Ctrl-C stops the run on the server and prints what it measured (exit 130); a second one
leaves at once, the run stopped or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from latlab.cli.load_options import LoadJob, UsageError
from latlab.cli.load_view import LoadView, make_view
from latlab.cli.remote import GATEWAY_DOWN, UNREACHABLE

RUNS = "/api/v1/load-runs"
FOLLOW_EVERY_S = 0.5
LOST_AFTER_S = 30.0  # a server that answers nothing this long is given up
CREATE_ATTEMPTS = 3
ENDED = ("completed", "failed", "stopped")


class ServerRefused(Exception):
    """The server said no; ``code`` is the exit status (2: the options, 1: the server)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def remote_spec(job: LoadJob, shards: int) -> dict[str, Any]:
    """The run as the API takes it: the long option names, as given."""
    options, request = job.options, job.plan.request
    if options.ca_file is not None:
        raise UsageError("--ca-file stays here: set LATLAB_PROBE_CA_FILE on the server")
    try:
        body = request.body.decode()
    except UnicodeDecodeError:
        raise UsageError("--server sends the body as text: it must be UTF-8") from None
    names = [name.lower() for name, _ in request.headers]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"--server sends one value a header: {', '.join(repeated)} is repeated")
    given = {
        "requests": options.requests,
        "duration": options.duration,
        "rate": options.rate,
        "workers": options.workers,
        "expect_status": options.expect_status,
        "probe": options.probe,
        "warmup": options.warmup,
    }
    return {
        "url": options.url,
        "connections": options.connections,
        "method": request.method,
        "headers": dict(request.headers),
        "body": body,
        "timeout": options.timeout,
        "thresholds": list(options.thresholds),
        "insecure": options.insecure,
        "shards": shards,
        **{key: value for key, value in given.items() if value is not None},
    }


@dataclass(frozen=True, slots=True)
class ServerFigures:
    """A run's stats so far, as the server answers them (the view's :class:`SoFar`)."""

    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None

    @classmethod
    def of(cls, stats: Mapping[str, Any] | None) -> ServerFigures:
        if not stats:
            return cls(0, 0, None, None)
        latency = stats.get("latency_ms") or {}
        return cls(
            int(stats["requests"]), int(stats["errors"]), latency.get("p50"), latency.get("p99")
        )

    def p50_p99_ms(self) -> tuple[float | None, float | None]:
        return self.p50_ms, self.p99_ms


async def create(api: httpx.AsyncClient, spec: Mapping[str, Any], timeout_s: float) -> int:
    """Start the run on the server; its id. :class:`ServerRefused` with the reason.

    The answer comes once the run has started (its target checked), so it may take the
    run's request timeout and more; an ``Idempotency-Key`` makes a retry after a lost
    answer find the same run instead of starting a second one."""
    key = {"Idempotency-Key": secrets.token_hex(16)}
    for attempt in range(CREATE_ATTEMPTS):
        try:
            answer = await api.post(
                RUNS, json=spec, params={"start": True}, headers=key, timeout=timeout_s
            )
        except httpx.TransportError as exc:
            if attempt + 1 == CREATE_ATTEMPTS:
                message = f"cannot reach the server at {api.base_url}: {exc}"
                raise ServerRefused(message, UNREACHABLE) from None
            await asyncio.sleep(FOLLOW_EVERY_S * (attempt + 1))
            continue
        if answer.status_code == 201:
            return int(_document(answer)["id"])
        if answer.status_code < 500 or attempt + 1 == CREATE_ATTEMPTS:
            raise ServerRefused(_reason(answer), _exit_code(answer))
        await asyncio.sleep(FOLLOW_EVERY_S * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _exit_code(answer: httpx.Response) -> int:
    """2 for what the user must change (the options, the token), 3 for a server that is
    down (a proxy's 502/503/504, as the client commands say), 1 for the rest."""
    if answer.status_code in GATEWAY_DOWN:
        return UNREACHABLE
    return 2 if answer.status_code in (401, 403, 422) else 1


def _document(answer: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; :class:`ServerRefused` if it is not one (a proxy's page)."""
    try:
        document = answer.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ServerRefused(f"the server answered {answer.status_code} with no JSON object", 1)
    return document


def _reason(answer: httpx.Response) -> str:
    """The server's refusal in one line: the first field error, or its detail."""
    if answer.status_code == 401:
        return "the server wants a token: set LATLAB_API_TOKEN"
    try:
        document = answer.json()
    except ValueError:
        document = None
    detail = document.get("detail") if isinstance(document, dict) else answer.text[:200]
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        field = ".".join(str(part) for part in first.get("loc", [])[1:])
        return f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    return f"the server answered {answer.status_code}: {detail}"


@dataclass(slots=True)
class Follower:
    """Reads the run's new seconds and state until it has ended and every second is read.
    A server that stops answering is asked again for ``LOST_AFTER_S`` before giving up."""

    api: httpx.AsyncClient
    run_id: int
    view: LoadView
    rows: list[dict[str, Any]]
    said_paused: bool = False

    async def follow(self) -> dict[str, Any]:
        while True:
            run = await self._get(f"{RUNS}/{self.run_id}")
            await self._new_seconds(run)
            if run["state"] in ENDED and len(self.rows) >= int(run["progress"]["seconds"]):
                return run  # ended before its seconds were read: none can follow
            self._tell_paused(run["state"] == "paused")
            await asyncio.sleep(FOLLOW_EVERY_S)

    def _refused(self, answer: httpx.Response) -> str:
        if answer.status_code == 404:
            return f"run {self.run_id} is gone from the server (deleted there)"
        return _reason(answer)

    def _tell_paused(self, paused: bool) -> None:
        if paused and not self.said_paused:
            sys.stderr.write(f"latlab load: run {self.run_id} is paused on the server\n")
        self.said_paused = paused

    async def _new_seconds(self, run: Mapping[str, Any]) -> None:
        page = await self._get(f"{RUNS}/{self.run_id}/seconds", offset=len(self.rows), limit=1000)
        figures = ServerFigures.of(run.get("stats"))
        for row in page["data"]:
            self.rows.append(row)
            self.view.second(row, figures, float(row["second"] + 1))

    async def _get(self, path: str, **params: int) -> dict[str, Any]:
        deadline = time.monotonic() + LOST_AFTER_S
        while True:
            try:
                answer = await self.api.get(path, params=params)
            except httpx.TransportError as exc:
                problem = str(exc) or type(exc).__name__
            else:
                if answer.status_code < 400:
                    return _document(answer)
                if answer.status_code < 500:  # deleted there, or the token revoked: final
                    raise ServerRefused(self._refused(answer), _exit_code(answer))
                problem = f"it answered {answer.status_code}"
            if time.monotonic() > deadline:
                message = f"lost the server at {self.api.base_url} ({problem})"
                raise ServerRefused(f"{message}; run {self.run_id} may go on there", UNREACHABLE)
            await asyncio.sleep(FOLLOW_EVERY_S)


@dataclass(slots=True)
class Interrupts:
    """Ctrl-C (or SIGTERM): the first one calls :meth:`first` (stop, keep what was measured);
    the second cancels ``task`` at once."""

    task: asyncio.Task[Any]
    count: int = 0

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        self.count += 1
        if self.count > 1:
            self.task.cancel()
        else:
            self.first()

    def first(self) -> None:
        self.task.cancel()


@dataclass(slots=True)
class RemoteInterrupts(Interrupts):
    """The first one stops the run on the server."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def first(self) -> None:
        self.stop.set()


async def stop_when_asked(api: httpx.AsyncClient, run_id: int, asked: asyncio.Event) -> None:
    await asked.wait()
    with contextlib.suppress(httpx.HTTPError):  # the follower reports a lost server
        await api.post(f"{RUNS}/{run_id}/stop")


def report_of(job: LoadJob, run: Mapping[str, Any], *, interrupted: bool) -> dict[str, Any]:
    """The same keys as a run made here, plus the server's id of the run and its shards."""
    stats = dict(run.get("stats") or {})
    probe = stats.pop("probe", None)
    report: dict[str, Any] = {
        "url": str(job.plan.url),
        "model": "open" if job.plan.open_model else "closed",
        "connections": run["progress"]["connections"],
        "workers": run["spec"]["workers"],
        "shards": run["spec"]["shards"],
        "rate": run["progress"]["rate"],
        "interrupted": interrupted,
        "server_run_id": run["id"],
        **stats,
        "thresholds": run.get("thresholds") or [],
    }
    if probe is not None:
        report["probe"] = probe
    return report


def view_for(job: LoadJob) -> LoadView:
    return make_view(job.console, job.plan, quiet=job.options.quiet)
