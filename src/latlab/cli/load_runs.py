"""``latlab load-run …``: list, show, drive, retune and watch load runs on a server.

A run is made with ``latlab load URL … --server URL`` (or ``POST /api/v1/load-runs``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from latlab.cli.remote import (
    DEFAULT_SERVER,
    JsonOption,
    Server,
    ServerOption,
    TokenOption,
    add_actions,
    add_listing,
    client_app,
    id_argument,
    show,
)
from latlab.cli.watch import ENDED, EVERY_S, SPARK_POINTS, ms, sparkline

load_run_app = client_app("Load runs")
IdArgument = Annotated[int, id_argument("load run")]


def _table(runs: list[dict[str, Any]]) -> Table:
    table = Table("id", "state", "url", "rate", "connections", "requests", "errors")
    for run in runs:
        progress = run["progress"]
        rate = f"{progress['rate']} req/s" if progress.get("rate") else "closed"
        table.add_row(
            str(run["id"]), run["state"], run["spec"]["url"], rate,
            str(progress.get("connections")), str(progress["requests"]), str(progress["errors"]),
        )  # fmt: skip
    return table


add_listing(load_run_app, "load-runs", "load runs", _table)


@load_run_app.command("show")
def show_one(
    run_id: IdArgument,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """One load run with its figures so far."""
    run = Server(server, token).call("GET", f"/load-runs/{run_id}")
    if as_json:
        show(run, True)
        return
    Console().print(_table([run]), _figures(run))


def _figures(run: dict[str, Any]) -> Table:
    figures = Table("", "p50", "p90", "p99", "p99.9", "max")
    stats = run.get("stats") or {}
    for name, key in (("service", "latency_ms"), ("corrected", "corrected_latency_ms")):
        latency = stats.get(key)
        if latency:
            keys = ("p50", "p90", "p99", "p99_9", "max")
            figures.add_row(name, *(ms(latency[k]) for k in keys))
    return figures


add_actions(load_run_app, "load-runs", "load run", lambda done: _table([done]))


@load_run_app.command("set")
def retune(
    run_id: IdArgument,
    rate: Annotated[
        float | None, typer.Option(help="Requests a second from now on [default: unchanged].")
    ] = None,
    connections: Annotated[
        int | None, typer.Option(help="Connections from now on [default: unchanged].")
    ] = None,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Change a running run's rate and/or connections (in effect within a second)."""
    body = {k: v for k, v in {"rate": rate, "connections": connections}.items() if v is not None}
    if not body:
        raise typer.BadParameter("give --rate, --connections or both")
    run = Server(server, token).call("PATCH", f"/load-runs/{run_id}", json=body)
    show(run, as_json, _table([run]))


def _view(run: dict[str, Any], seconds: list[dict[str, Any]]) -> Group:
    progress = run["progress"]
    rps = [second["rps"] for second in seconds]
    head = (
        f"load run {run['id']}: {run['state']}, {progress['seconds']} s, "
        f"{progress['requests']} requests, {progress['errors']} errors, "
        f"last second {progress.get('rps') or 0} req/s"
    )
    return Group(Text(head), _figures(run), Text(sparkline(rps), style="cyan"))


@load_run_app.command()
def watch(
    run_id: IdArgument, server: ServerOption = DEFAULT_SERVER, token: TokenOption = None
) -> None:
    """A live view (figures, a sparkline of req/s) until the run ends: exit 0 once it
    completed, 1 if it failed or was stopped, 130 on Ctrl-C (the run goes on)."""
    api = Server(server, token)
    try:
        with Live(console=Console(), auto_refresh=False) as live:
            while True:
                run = api.call("GET", f"/load-runs/{run_id}")
                first = max(0, run["progress"]["seconds"] - SPARK_POINTS)
                params = {"offset": first, "limit": SPARK_POINTS}
                seconds = api.call("GET", f"/load-runs/{run_id}/seconds", params=params)["data"]
                live.update(_view(run, seconds), refresh=True)
                if run["state"] in ENDED:
                    raise SystemExit(ENDED[run["state"]])
                time.sleep(EVERY_S)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        api.close()
