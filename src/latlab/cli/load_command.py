"""``latlab load``: its options as the command line takes them. The run itself, and its
heavy imports, are in :mod:`latlab.cli.load`, imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def load(
    url: Annotated[str, typer.Argument(metavar="URL", help="The http:// or https:// URL to load.")],
    connections: Annotated[
        int, typer.Option("--connections", "-c", metavar="N", help="Connections, in total.")
    ] = 64,
    requests: Annotated[
        int | None,
        typer.Option(
            "--requests", "-n", metavar="N", help="Send exactly N requests.", show_default="none"
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            "-d",
            metavar="DURATION",
            help="500ms, 30s, 2m, 1h or seconds.",
            show_default="10s",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            metavar="RATE", help="Requests/s in total: the open model.", show_default="closed model"
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="Processes; -c, -n, --rate are split.", show_default="cores"
        ),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", "-m", metavar="METHOD", help="HTTP method.")
    ] = "GET",
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            metavar="HEADER",
            help="'Name: value', repeatable.",
            show_default="none",
        ),
    ] = None,
    body: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Request body.", show_default="none")
    ] = None,
    body_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Request body from a file.", show_default="none"),
    ] = None,
    timeout: Annotated[str, typer.Option(metavar="DURATION", help="Per request.")] = "10s",
    expect_status: Annotated[
        str | None,
        typer.Option(metavar="STATUSES", help="Success: 200,201 or 2xx.", show_default="< 400"),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            metavar="EXPR",
            help="p50|p90|p99|p99.9|mean|max<TIME, errors<N%, rps>N; repeatable (exit 99).",
            show_default="none",
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Write the summary.", show_default="none"),
    ] = None,
    csv_path: Annotated[
        Path | None,
        typer.Option("--csv", metavar="FILE", help="Write one row a second.", show_default="none"),
    ] = None,
    report_path: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE.html",
            help="Write a self-contained HTML report (opens offline).",
            show_default="none",
        ),
    ] = None,
    probe: Annotated[
        str | None,
        typer.Option(
            metavar="INTERVAL", help="Fresh-connection probe every INTERVAL.", show_default="off"
        ),
    ] = None,
    warmup: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="Send, uncounted, first.", show_default="0s"),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="https: skip certificate checks.", show_default="off")
    ] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="https: CA bundle to trust.", show_default="system"),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the summary.", show_default="off")
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Have this LatLab server run it (token: LATLAB_API_TOKEN).",
            show_default="here",
        ),
    ] = None,
    shards: Annotated[
        int,
        typer.Option(metavar="N", help="With --server: split over N workers.", min=1, max=64),
    ] = 1,
) -> None:
    """Load URL with keep-alive connections (closed model, or --rate: open model).

    Exit status 0: done; 99: a threshold failed; 2: bad usage or a refused target (nothing
    sent); 1: the target cannot be reached; 130: interrupted (the summary is still printed).
    """
    from latlab.cli.load import run_load
    from latlab.cli.load_options import LoadOptions

    run_load(
        LoadOptions(
            url, connections, requests, duration, rate, workers, method, tuple(header or ()),
            body, body_file, timeout, expect_status, tuple(threshold or ()), json_path,
            csv_path, probe, warmup, insecure, ca_file, quiet, server, shards,
            report_path=report_path,
        )
    )  # fmt: skip
