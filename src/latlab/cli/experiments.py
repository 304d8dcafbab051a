"""``latlab experiment …``: create, list, show, drive and watch experiments on a server."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
from latlab.cli.watch import ms, watch_experiment

experiment_app = client_app("Experiments")
IdArgument = Annotated[int, id_argument("experiment")]


def _row(experiment: dict[str, Any]) -> list[str]:
    spec = experiment["settings"]
    target = f"{spec['scheme']}://{spec['host']}:{spec['port']}{spec['path']}"
    return [
        str(experiment["id"]),
        experiment["state"],
        target,
        f"{experiment['done']}/{spec['count'] * len(spec.get('locations') or [None])}",
    ]


def _table(experiments: list[dict[str, Any]]) -> Table:
    table = Table("id", "state", "target", "probes")
    for experiment in experiments:
        table.add_row(*_row(experiment))
    return table


@experiment_app.command()
def create(
    host: Annotated[str, typer.Option(help="Target host.")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Target port.")],
    path: Annotated[str, typer.Option(help="Path (and query) to request.")] = "/api/latency",
    interval: Annotated[float, typer.Option(metavar="S", help="Seconds between probes.")] = 1.0,
    count: Annotated[int, typer.Option(min=1, help="Probes in total.")] = 10,
    scheme: Annotated[str, typer.Option(help="http or https.")] = "http",
    method: Annotated[str, typer.Option(help="HTTP method.")] = "GET",
    expect_status: Annotated[
        str | None, typer.Option(help="Like 2xx or 200,201 [default: any status].")
    ] = None,
    location: Annotated[
        list[str] | None,
        typer.Option(help="Probe from this location's worker; repeat for several [default: here]."),
    ] = None,
    start: Annotated[bool, typer.Option("--start", help="Start it at once.")] = False,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """Create an experiment (the server validates it: a bad value is exit 1, its reason)."""
    body: dict[str, object] = {"host": host, "port": port, "path": path, "interval_s": interval}
    body |= {"count": count, "scheme": scheme, "method": method}
    if expect_status is not None:
        body["expect_status"] = expect_status
    if location:
        body["locations"] = location
    # One request: a start the server refuses leaves no experiment behind.
    made = Server(server, token).call("POST", "/experiments", json=body, params={"start": start})
    show(made, as_json, _table([made]))


add_listing(experiment_app, "experiments", "experiments", _table)


@experiment_app.command("show")
def show_one(
    experiment_id: IdArgument,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """One experiment with its stats."""
    api = Server(server, token)
    experiment = api.call("GET", f"/experiments/{experiment_id}")
    stats = api.call("GET", f"/experiments/{experiment_id}/stats")
    table = _table([experiment])
    figures = Table("count", "errors", "p50", "p90", "p99", "max")
    latencies = (ms(stats[key]) for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
    figures.add_row(str(stats["count"]), str(stats["errors"]), *latencies)
    if as_json:
        show({"experiment": experiment, "stats": stats}, True)
        return
    Console().print(table, figures)


add_actions(experiment_app, "experiments", "experiment", lambda done: _table([done]))


@experiment_app.command()
def watch(
    experiment_id: IdArgument,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
) -> None:
    """A live view (progress, p50 / p99, a sparkline of the last latencies) until it ends."""
    raise SystemExit(watch_experiment(Server(server, token), experiment_id))
