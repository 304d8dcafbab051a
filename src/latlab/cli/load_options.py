"""``latlab load``'s options, checked and turned into a plan before anything is sent."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from latlab.cli.load_view import (
    PipeSafeConsole,
    claim_outputs,
)
from latlab.measure.http_probe import tls_context
from latlab.measure.load.plan import (
    DEFAULT_DURATION_S,
    LoadLimits,
    LoadPlan,
    parse_duration,
    parse_expect_status,
)
from latlab.measure.load.thresholds import Threshold, parse_thresholds
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import RequestSpec, parse_header, parse_url

if TYPE_CHECKING:
    from latlab.settings import Settings


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """The command line as given; ``None`` where an option was left out."""

    url: str
    connections: int = 64
    requests: int | None = None
    duration: str | None = None
    rate: float | None = None
    workers: int | None = None
    method: str = "GET"
    headers: tuple[str, ...] = ()
    body: str | None = None
    body_file: Path | None = None
    timeout: str = "10s"
    expect_status: str | None = None
    thresholds: tuple[str, ...] = ()
    json_path: Path | None = None
    csv_path: Path | None = None
    probe: str | None = None
    warmup: str | None = None
    insecure: bool = False
    ca_file: Path | None = None
    quiet: bool = False
    server: str | None = None  # a LatLab server whose workers make the run
    shards: int = 1
    report_path: Path | None = None  # --report FILE.html


@dataclass(slots=True)
class LoadJob:
    """Everything checked and ready; nothing sent yet."""

    options: LoadOptions
    plan: LoadPlan
    policy: TargetPolicy
    tls: ssl.SSLContext | None
    thresholds: list[Threshold]
    probe_interval_s: float | None
    # Output files the checks created: removed again if the run ends before writing them.
    created_outputs: list[Path] = field(default_factory=list)
    console: Console = field(default_factory=lambda: PipeSafeConsole(highlight=False))


class UsageError(ValueError):
    """A mistake in the options or files (exit 2)."""


def settings_from_env() -> Settings:
    from pydantic import ValidationError

    from latlab.cli.startup import explain
    from latlab.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise UsageError(str(explain(exc) or exc)) from None


def prepare(options: LoadOptions, settings: Settings) -> LoadJob:
    """Check every option; raises PlanError, RequestError, UsageError or OutputError."""
    limits = LoadLimits.from_settings(settings)
    plan = _plan(options, min(_cores(), limits.max_workers))
    if options.server is None:  # a server judges a run it makes by its own limits
        limits.check(plan)
    thresholds = parse_thresholds(options.thresholds)
    probe_s = _probe_interval_s(options.probe, settings.min_interval_s)
    tls = _tls(plan)
    policy = TargetPolicy.from_settings(settings)
    if options.report_path is not None:
        _check_report_library()
    created = claim_outputs(
        {"--json": options.json_path, "--csv": options.csv_path, "--report": options.report_path}
    )
    return LoadJob(options, plan, policy, tls, thresholds, probe_s, created)


def _check_report_library() -> None:
    """--report needs the chart library: said before the run, not after it."""
    from latlab.web.assets import uplot

    chart = uplot()
    if not chart.installed:
        raise UsageError(f"--report needs {chart.directory}: run `make install` (npm ci)")


def _probe_interval_s(text: str | None, least_s: float) -> float | None:
    if text is None:
        return None
    interval_s = parse_duration(text, "probe")
    if interval_s < least_s:  # as the API's check (LATLAB_MIN_INTERVAL_S)
        raise UsageError(f"probe interval must be at least {least_s} s")
    return interval_s


def _tls(plan: LoadPlan) -> ssl.SSLContext | None:
    """The https context; a --ca-file is loaded (so checked) whatever the URL's scheme."""
    if plan.url.scheme != "https" and plan.ca_file is None:
        return None
    try:
        tls = tls_context(plan.verify_tls, plan.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--ca-file: cannot load {plan.ca_file}: {exc}") from None
    return tls if plan.url.scheme == "https" else None


def _plan(options: LoadOptions, default_workers: int) -> LoadPlan:
    if options.requests is not None and options.duration is not None:
        raise UsageError("give -n/--requests or -d/--duration, not both")
    duration_s = None
    if options.requests is None:
        given = options.duration
        duration_s = DEFAULT_DURATION_S if given is None else parse_duration(given, "duration")
    expect = options.expect_status
    return LoadPlan(
        url=parse_url(options.url),
        request=_request(options),
        connections=options.connections,
        requests=options.requests,
        duration_s=duration_s,
        rate=options.rate,
        workers=default_workers if options.workers is None else options.workers,
        timeout_s=parse_duration(options.timeout, "timeout"),
        expect_status=None if expect is None else parse_expect_status(expect),
        warmup_s=0.0 if options.warmup is None else parse_duration(options.warmup, "warmup"),
        verify_tls=not options.insecure,
        ca_file=None if options.ca_file is None else str(options.ca_file),
    )


def _request(options: LoadOptions) -> RequestSpec:
    if options.body is not None and options.body_file is not None:
        raise UsageError("give --body or --body-file, not both")
    body = b"" if options.body is None else options.body.encode()
    if options.body_file is not None:
        try:
            body = options.body_file.read_bytes()
        except OSError as exc:
            raise UsageError(f"--body-file: cannot read {options.body_file}: {exc}") from None
    headers = tuple(parse_header(text) for text in options.headers)
    return RequestSpec(options.method.upper(), headers, body)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
