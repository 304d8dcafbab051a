"""What ``latlab load`` shows and writes: a live view while it runs, then a wrk2-like
summary, and the ``--json`` / ``--csv`` files.

On a terminal the live view is redrawn once a second, when a merged second arrives (no
refresh thread: the side probe shares this process and must not wait on a redraw). Anywhere
else each second is one plain line, so a log or a pipe reads well. A reader that goes away
(``| head``) silences the output, never the run: the files are still written.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.summary import CSV_COLUMNS

# (summary key, column header)
LATENCY_COLUMNS: tuple[tuple[str, str], ...] = (
    *(("min", "min"), ("mean", "mean"), ("p50", "p50"), ("p90", "p90")),
    *(("p99", "p99"), ("p99_9", "p99.9"), ("max", "max")),
)


class PipeSafeConsole(Console):
    """A console whose reader may leave: rich's default ends the process on a broken pipe
    (exit 1, mid-run, before the files are written); this one goes quiet instead."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        # What is still buffered for the closed pipe is flushed into /dev/null at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.file.fileno())
        os.close(devnull)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class SoFar(Protocol):
    """The run's figures so far: :class:`RunTotals` here, a server's stats with ``--server``."""

    @property
    def requests(self) -> int: ...

    @property
    def errors(self) -> int: ...

    def p50_p99_ms(self) -> tuple[float | None, float | None]: ...


class LoadView(Protocol):
    def start(self) -> None: ...

    def second(self, row: Mapping[str, Any], totals: SoFar, elapsed_s: float) -> None: ...

    def stop(self) -> None: ...


class QuietView:
    """``--quiet``: nothing until the summary."""

    def start(self) -> None:
        pass

    def second(self, row: Mapping[str, Any], totals: SoFar, elapsed_s: float) -> None:
        pass

    def stop(self) -> None:
        pass


class LineView(QuietView):
    """One plain line per second, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def second(self, row: Mapping[str, Any], totals: SoFar, elapsed_s: float) -> None:
        self._console.print(
            f"second {row['second']}: {row['requests']} requests, {row['errors']} errors, "
            f"p50 {ms(row['p50_ms'])} ms, p99 {ms(row['p99_ms'])} ms, max {ms(row['max_ms'])} ms",
            highlight=False,
            soft_wrap=True,
        )


class LiveView:
    """Rich Live on a terminal: elapsed, req/s, p50/p99 so far, errors, progress."""

    def __init__(self, console: Console, plan: LoadPlan) -> None:
        self._plan = plan
        waiting = Text(f"starting {plan.workers} worker(s) for {plan.url} ...")
        self._live = Live(waiting, console=console, auto_refresh=False, transient=True)

    def start(self) -> None:
        self._live.start(refresh=True)

    def second(self, row: Mapping[str, Any], totals: SoFar, elapsed_s: float) -> None:
        self._live.update(self._render(row, totals, elapsed_s), refresh=True)

    def stop(self) -> None:
        self._live.stop()

    def _render(self, row: Mapping[str, Any], totals: SoFar, elapsed_s: float) -> Group:
        p50_ms, p99_ms = totals.p50_p99_ms()
        figures = {
            "elapsed": f"{elapsed_s:.0f} s",
            "req/s": f"{row['rps']:,}",
            "requests": f"{totals.requests:,}",
            "errors": f"{totals.errors:,}",
            "p50 so far": f"{ms(p50_ms)} ms",
            "p99 so far": f"{ms(p99_ms)} ms",
        }
        table = Table.grid(padding=(0, 3))
        table.add_row(*(Text(name, style="dim") for name in figures))
        table.add_row(*figures.values())
        parts: list[RenderableType] = [table]
        progress = self._progress(totals, elapsed_s)
        if progress is not None:
            parts.append(ProgressBar(total=1.0, completed=min(progress, 1.0), width=60))
        return Group(*parts)

    def _progress(self, totals: SoFar, elapsed_s: float) -> float | None:
        if self._plan.requests is not None:
            return totals.requests / self._plan.requests
        if self._plan.duration_s is not None:
            return elapsed_s / self._plan.duration_s
        return None


def make_view(console: Console, plan: LoadPlan, *, quiet: bool) -> LoadView:
    if quiet:
        return QuietView()
    if console.is_terminal:
        return LiveView(console, plan)
    return LineView(console)


def print_summary(console: Console, report: Mapping[str, Any]) -> None:
    """The run's figures, as wrk2 prints them: totals, errors, a latency table, thresholds."""
    for line in _totals_lines(report):
        console.print(line, highlight=False, soft_wrap=True)
    console.print()
    console.print(_latency_table(report))
    if report["thresholds"]:
        console.print()
        console.print(_thresholds_table(report["thresholds"]))


def _totals_lines(report: Mapping[str, Any]) -> list[str]:
    model = "open model" if report["rate"] is not None else "closed model"
    rate = f" at {report['rate']:,g} req/s" if report["rate"] is not None else ""
    interrupted = " (interrupted)" if report["interrupted"] else ""
    lines = [
        f"{report['url']}: {model}{rate}, {report['connections']} connections, "
        f"{report['workers']} worker(s){interrupted}",
        f"  requests    {report['requests']:,} in {report['duration_s']:.2f} s, "
        f"{report['rps']:,.1f} req/s",
        f"  errors      {report['errors']:,}{_nonzero(report['errors_by_kind'])}",
        f"  status      {_counts(report['status']) or 'none'}",
    ]
    if report["late_sends"] is not None:
        lines.append(f"  late sends  {report['late_sends']:,} (sent over 10 ms after their time)")
    return lines


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in counts.items() if count)


def _nonzero(counts: Mapping[str, int]) -> str:
    shown = _counts(counts)
    return f" ({shown})" if shown else ""


def _latency_table(report: Mapping[str, Any]) -> Table:
    table = Table(box=None, pad_edge=False, title_justify="left")
    table.add_column("latency (ms)")
    for _, header in LATENCY_COLUMNS:
        table.add_column(header, justify="right")
    rows = [("service", report["latency_ms"])]
    if report["corrected_latency_ms"] is not None:
        rows.append(("corrected", report["corrected_latency_ms"]))
    probe = report.get("probe")
    if probe is not None:
        rows.append((f"probe ({probe['count']}, {probe['errors']} errors)", probe))
    for name, latency in rows:
        table.add_row(name, *(ms(latency[key]) for key, _ in LATENCY_COLUMNS))
    return table


def _thresholds_table(judged: list[Mapping[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for header in ("threshold", "measured", ""):
        table.add_column(header)
    for verdict in judged:
        value = verdict["value"]
        shown = "nothing measured" if value is None else f"{value:g} {_unit(verdict)}"
        mark = Text("ok", style="green") if verdict["ok"] else Text("FAILED", style="bold red")
        table.add_row(verdict["expression"], shown, mark)
    return table


def _unit(verdict: Mapping[str, Any]) -> str:
    expression = str(verdict["expression"])
    if expression.startswith("errors"):
        return "%"
    return "req/s" if expression.startswith("rps") else "ms"


class OutputError(ValueError):
    """An output file that cannot be opened for writing (exit 2, nothing sent)."""


def claim_outputs(paths: Mapping[str, Path | None]) -> list[Path]:
    """Open each output file (by option) for writing before anything is sent: asking
    ``os.access`` is a guess (root passes it for /proc). A missing file is created, an
    existing one keeps its contents until the results replace them. The files created."""
    created: list[Path] = []
    for option, path in paths.items():
        if path is None:
            continue
        try:
            if _claim(path):
                created.append(path)
        except OSError as exc:
            remove_outputs(created)
            raise OutputError(f"{option}: cannot write {path}: {exc.strerror}") from None
    return created


def _claim(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        os.close(os.open(path, os.O_WRONLY))
        return False
    return True


def remove_outputs(paths: list[Path]) -> None:
    """The files :func:`claim_outputs` created, when the command ends without results."""
    for path in paths:
        path.unlink(missing_ok=True)


def open_closed_standard_streams() -> None:
    """Open /dev/null onto a closed fd 0, 1 or 2, so that no socket ever takes one: uvloop
    aborts closing such a socket (``uv__close`` asserts), and a print would go to the peer."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free fd: often ``fd`` itself
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    # Python leaves a stream that was closed at start-up as None; these live as long as it.
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def write_files(
    report: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    json_path: Path | None,
    csv_path: Path | None,
) -> None:
    """``--json``: the report; ``--csv``: one row per second (empty cells where nothing
    was measured)."""
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    if csv_path is not None:
        with csv_path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(CSV_COLUMNS)
            for row in rows:
                writer.writerow(["" if row[key] is None else row[key] for key in CSV_COLUMNS])


def write_report(
    path: Path, method: str, report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> None:
    """``--report``: the HTML report a server makes of a load run, of this one (its figures
    are the summary's; a run cut short is "stopped")."""
    from latlab.web.reports import ReportUnavailable, load_run_data, render

    run = {
        "state": "stopped" if report.get("interrupted") else "completed",
        "spec": {k: report[k] for k in ("url", "rate", "connections")} | {"method": method},
        "stats": dict(report),
    }
    try:
        html = render("load-run", f"Load run of {report['url']}", load_run_data(run, rows))
    except ReportUnavailable as exc:
        raise OSError(str(exc)) from exc
    path.write_text(html, encoding="utf-8")
