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
import sys
import time
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import httpx
import uvloop

from latlab.cli.load_options import LoadJob, LoadOptions, UsageError, prepare, settings_from_env
from latlab.cli.load_remote import (
    Follower,
    Interrupts,
    RemoteInterrupts,
    ServerRefused,
    create,
    remote_spec,
    report_of,
    stop_when_asked,
    view_for,
)
from latlab.cli.load_view import (
    LoadView,
    OutputError,
    make_view,
    open_closed_standard_streams,
    print_summary,
    remove_outputs,
    write_files,
    write_report,
)
from latlab.jobs.clock import SystemClock
from latlab.jobs.kinds.load_probe import SideProbe, side_probe_target
from latlab.measure.client import ProbeClient
from latlab.measure.load.plan import (
    PlanError,
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
from latlab.measure.load.thresholds import judge_all
from latlab.measure.request import RequestError
from latlab.measure.stats import LatencyHistogram

USAGE, UNREACHABLE, THRESHOLD_FAILED, INTERRUPTED = 2, 1, 99, 130
CREATE_MARGIN_S = 30.0  # a server answers a start once the run has started: beyond its timeout


def run_load(options: LoadOptions) -> None:
    """The whole command; ends with ``SystemExit`` carrying its exit code."""
    open_closed_standard_streams()
    try:
        settings = settings_from_env()
        if options.shards != 1 and options.server is None:
            raise UsageError("--shards needs --server: the shards run on a server's workers")
        job = prepare(options, settings)
    except (PlanError, RequestError, UsageError, OutputError) as exc:
        raise SystemExit(_fail(str(exc), USAGE)) from None
    try:
        spec = None if options.server is None else remote_spec(job, options.shards)
    except UsageError as exc:
        remove_outputs(job.created_outputs)  # claimed by prepare(): nothing was written
        raise SystemExit(_fail(str(exc), USAGE)) from None
    try:
        if options.server is None or spec is None:
            code = uvloop.run(_run(job))
        else:
            token = settings.api_token
            secret = None if token is None else token.get_secret_value() or None
            code = uvloop.run(_run_remote(job, spec, options.server, secret))
    finally:
        remove_outputs(job.created_outputs)
    raise SystemExit(code)


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
class _Interrupts(Interrupts):
    """The first one stops the workers, which report what they measured."""

    pool: LoadPool | None = None

    def first(self) -> None:
        if self.pool is None:
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
    return _finish(job, report, totals.rows, interrupted=interrupted)


def _finish(
    job: LoadJob, report: dict[str, Any], rows: list[dict[str, Any]], *, interrupted: bool
) -> int:
    """Write the files, print the summary; the exit status."""
    # The files first: a reader that stops reading stdout must not cost them.
    job.created_outputs.clear()
    try:
        write_files(report, rows, job.options.json_path, job.options.csv_path)
        if job.options.report_path is not None:
            write_report(job.options.report_path, job.options.method, report, rows)
    except OSError as exc:
        print_summary(job.console, report)
        return _fail(f"cannot write the results: {exc}", 1)
    print_summary(job.console, report)
    if interrupted:
        return INTERRUPTED
    return THRESHOLD_FAILED if not all(t["ok"] for t in report["thresholds"]) else 0


# --- the run made by a server: ``--server`` ---


async def _run_remote(job: LoadJob, spec: dict[str, Any], server: str, token: str | None) -> int:
    task = asyncio.current_task()
    assert task is not None
    interrupts = RemoteInterrupts(task)
    interrupts.install()
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=server, headers=headers, timeout=10) as api:
            run_id = await create(api, spec, job.plan.timeout_s + CREATE_MARGIN_S)
            follower = Follower(api, run_id, view_for(job), [])
            run = await _followed(follower, interrupts)
    except ServerRefused as exc:
        return _fail(str(exc), exc.code)
    except asyncio.CancelledError:
        return _fail("interrupted", INTERRUPTED)
    finally:
        interrupts.remove()
    if run["state"] == "failed":
        error = str(run.get("error"))
        return _fail(f"the run failed: {error}", USAGE if "not allowed" in error else UNREACHABLE)
    interrupted = interrupts.count > 0 or run["state"] == "stopped"  # here, or on the server
    report = report_of(job, run, interrupted=interrupted)
    return _finish(job, report, follower.rows, interrupted=interrupted)


async def _followed(follower: Follower, interrupts: RemoteInterrupts) -> dict[str, Any]:
    """Follow the run to its end; a first Ctrl-C meanwhile stops it on the server."""
    stopper = asyncio.create_task(stop_when_asked(follower.api, follower.run_id, interrupts.stop))
    follower.view.start()
    try:
        return await follower.follow()
    finally:
        follower.view.stop()
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)
