"""``latlab load``: options → a checked plan → preflight → worker pool → summary and files.

Every mistake that can be found before a request goes out is found first, and costs one
line on stderr and exit 2: options, limits, thresholds, the CA file, output paths (opened for
writing), then the target policy on the resolved address. A target nothing answers at is
exit 1; a failed threshold exit 99 (k6's code). Ctrl-C stops the workers, which report what
they measured: the summary is printed all the same (exit 130); a second Ctrl-C ends at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

import uvloop
from rich.console import Console

from latlab.cli.load_view import (
    LoadView,
    OutputError,
    PipeSafeConsole,
    claim_outputs,
    make_view,
    open_closed_standard_streams,
    print_summary,
    remove_outputs,
    write_files,
)
from latlab.jobs.clock import SystemClock
from latlab.jobs.kinds.load_probe import SideProbe, side_probe_target
from latlab.measure.client import ProbeClient
from latlab.measure.http_probe import tls_context
from latlab.measure.load.plan import (
    DEFAULT_DURATION_S,
    LoadLimits,
    LoadPlan,
    PlanError,
    parse_duration,
    parse_expect_status,
    split,
)
from latlab.measure.load.pool import START_LEAD_S, LoadError, LoadPool
from latlab.measure.load.preflight import (
    TargetRefused,
    TargetUnreachable,
    check_reachable,
    resolve_target,
)
from latlab.measure.load.summary import RunTotals
from latlab.measure.load.thresholds import Threshold, judge_all, parse_thresholds
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import RequestError, RequestSpec, parse_header, parse_url
from latlab.measure.stats import LatencyHistogram

if TYPE_CHECKING:
    from latlab.settings import Settings

USAGE, UNREACHABLE, THRESHOLD_FAILED, INTERRUPTED = 2, 1, 99, 130


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


def run_load(options: LoadOptions) -> None:
    """The whole command; ends with ``SystemExit`` carrying its exit code."""
    open_closed_standard_streams()
    try:
        job = prepare(options, _settings())
    except (PlanError, RequestError, UsageError, OutputError) as exc:
        raise SystemExit(_fail(str(exc), USAGE)) from None
    try:
        code = uvloop.run(_run(job))
    finally:
        remove_outputs(job.created_outputs)
    raise SystemExit(code)


def _settings() -> Settings:
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
    limits.check(plan)
    thresholds = parse_thresholds(options.thresholds)
    probe_s = _probe_interval_s(options.probe, settings.min_interval_s)
    tls = _tls(plan)
    policy = TargetPolicy.from_settings(settings)
    created = claim_outputs({"--json": options.json_path, "--csv": options.csv_path})
    return LoadJob(options, plan, policy, tls, thresholds, probe_s, created)


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


def _fail(message: str, code: int) -> int:
    try:
        sys.stderr.write(f"latlab load: {' '.join(message.split())}\n")
        sys.stderr.flush()
    except OSError:  # a stderr nobody reads (``2>&1 | head``) must not change the exit status
        devnull = os.open(os.devnull, os.O_WRONLY)  # where what is still buffered goes at exit
        os.dup2(devnull, 2)
        os.close(devnull)
    return code


# --- the run ---


@dataclass(slots=True)
class _Interrupts:
    """First Ctrl-C (or SIGTERM): stop the workers, keep what they measured; second: cancel."""

    task: asyncio.Task[Any]
    pool: LoadPool | None = None
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
        if self.pool is None or self.count > 1:
            self.task.cancel()
        else:
            self.pool.stop()


async def _run(job: LoadJob) -> int:
    task = asyncio.current_task()
    assert task is not None
    interrupts = _Interrupts(task)
    interrupts.install()
    try:
        return await _preflight_and_run(job, interrupts)
    except asyncio.CancelledError:
        return _fail("interrupted", INTERRUPTED)
    finally:
        interrupts.remove()


async def _preflight_and_run(job: LoadJob, interrupts: _Interrupts) -> int:
    plan = job.plan
    try:
        address = await resolve_target(plan.url, job.policy)
        await check_reachable(plan.url, address, job.tls, plan.timeout_s)
    except TargetRefused as exc:
        return _fail(str(exc), USAGE)
    except TargetUnreachable as exc:
        return _fail(str(exc), UNREACHABLE)
    pool = interrupts.pool = LoadPool(plan, address)
    view = make_view(job.console, plan, quiet=job.options.quiet)
    probe = None
    if job.probe_interval_s is not None:
        probes = ProbeClient(ca_file=plan.ca_file, policy=job.policy)
        target, interval_s = side_probe_target(plan), job.probe_interval_s
        probe = SideProbe(probes, target, interval_s, LatencyHistogram(), SystemClock())
    try:
        totals, duration_s = await _measure(pool, view, probe)
    except LoadError as exc:
        return _fail(str(exc), UNREACHABLE)
    return _report(job, totals, duration_s, probe, interrupted=interrupts.count > 0)


async def _measure(
    pool: LoadPool, view: LoadView, probe: SideProbe | None
) -> tuple[RunTotals, float]:
    """Run the pool to its end; the totals and the seconds the run counted requests for."""
    plan = pool.plan
    totals = RunTotals(open_model=plan.open_model)
    try:
        await pool.start()
        count_from_s = perf_counter() + START_LEAD_S + plan.warmup_s
        if probe is not None:  # its clock is time.monotonic's
            probe.start(time.monotonic() + (count_from_s - perf_counter()))
        view.start()
        async for second in pool.seconds():
            row = totals.add(second)
            view.second(row, totals, float(row["second"] + 1))
        counted_s = max(0.0, perf_counter() - count_from_s)
    finally:
        view.stop()
        if probe is not None:
            await probe.stop()
        await pool.close()
    if plan.duration_s is not None:
        counted_s = min(counted_s, plan.duration_s)
    return totals, counted_s


def _report(
    job: LoadJob,
    totals: RunTotals,
    duration_s: float,
    probe: SideProbe | None,
    *,
    interrupted: bool,
) -> int:
    plan = job.plan
    summary = totals.summary(duration_s)
    report: dict[str, Any] = {
        "url": str(plan.url),
        "model": "open" if plan.open_model else "closed",
        "connections": plan.connections,
        "workers": len(split(plan)),
        "rate": plan.rate,
        "interrupted": interrupted,
        **summary,
        "thresholds": judge_all(job.thresholds, summary),
    }
    if probe is not None:
        report["probe"] = probe.summary()
    # The files first: a reader that stops reading stdout must not cost them.
    job.created_outputs.clear()
    try:
        write_files(report, totals.rows, job.options.json_path, job.options.csv_path)
    except OSError as exc:
        print_summary(job.console, report)
        return _fail(f"cannot write the results: {exc}", 1)
    print_summary(job.console, report)
    if interrupted:
        return INTERRUPTED
    return THRESHOLD_FAILED if not all(t["ok"] for t in report["thresholds"]) else 0
