"""The ``latlab`` command. Heavy imports stay inside commands so each starts quickly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from latlab.cli import remote
from latlab.cli.experiments import experiment_app
from latlab.cli.load_command import load
from latlab.cli.load_runs import load_run_app
from latlab.cli.options import LogLevelOption, StorageOption, given
from latlab.cli.pipeline import pipeline_app

app = typer.Typer(
    name="latlab",
    help="LatLab: latency experiments and load runs against HTTP services.",
    no_args_is_help=True,
    add_completion=False,
    # A crash report must not print local variables: the API token is one of them.
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

app.add_typer(pipeline_app, name="pipeline")
app.add_typer(experiment_app, name="experiment")
app.add_typer(load_run_app, name="load-run")

HostOption = Annotated[
    str | None, typer.Option(help="Bind address [env LATLAB_HOST; default 127.0.0.1].")
]
PortOption = Annotated[
    int | None,
    typer.Option(help="Port [env LATLAB_PORT; default 8000].", min=0, max=65535),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        help="Bearer token the API asks for; prefer the env var, which `ps` does not show "
        "[env LATLAB_API_TOKEN; default none: no token asked on loopback].",
        show_default=False,
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure", help="Serve a non-loopback address without a token [env LATLAB_INSECURE]."
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show the traceback of a start-up error.")
]


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    targets_port: Annotated[
        int | None,
        typer.Option(
            help="Port of the built-in targets [env LATLAB_TARGETS_PORT; default 8008].",
            min=0,
            max=65535,
        ),
    ] = None,
    no_targets: Annotated[
        bool, typer.Option("--no-targets", help="Do not serve the built-in targets.")
    ] = False,
    token: TokenOption = None,
    insecure: InsecureOption = False,
    storage_url: StorageOption = None,
    log_level: LogLevelOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the control API (and the built-in targets on port 8008).

    Exit status 2: a configuration mistake; 3: the store or Redis unreachable at start-up.
    """
    from latlab.cli.serve import run_serve

    overrides = given(
        host=host,
        port=port,
        targets_port=targets_port,
        api_token=token,
        storage_url=storage_url,
        log_level=log_level,
    )
    if no_targets:
        overrides["targets_enabled"] = False
    if insecure:
        overrides["insecure"] = True
    run_serve(overrides, verbose=verbose)


@app.command()
def targets(
    host: Annotated[
        str | None, typer.Option(help="Bind address [env LATLAB_TARGETS_HOST; default 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port [env LATLAB_TARGETS_PORT; default 8008].", min=0, max=65535),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes [env LATLAB_TARGETS_WORKERS; default 1].", min=1, max=64
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Serve only the built-in targets (/api/latency, /sum, /test, ...)."""
    from latlab.cli.serve import run_targets

    overrides = given(targets_host=host, targets_port=port, targets_workers=workers)
    run_targets(overrides, verbose=verbose)


@app.command()
def bot(
    start_number: Annotated[int, typer.Argument(help="First number to print.")] = 0,
    tick_s: Annotated[float, typer.Option(help="Seconds between numbers.", min=0.001)] = 1.0,
) -> None:
    """The standalone robot: print START_NUMBER, +1, … once a second until Ctrl-C."""
    from latlab.bots.robot import run_robot

    run_robot(start_number, tick_s)


app.command()(load)  # defined in its own module: its options alone are 130 lines


@app.command()
def worker(
    location: Annotated[
        str,
        typer.Option(help="Where this worker probes from; jobs pinned elsewhere skip it."),
    ] = "any",
    capacity: Annotated[
        int, typer.Option(help="Experiments and load runs it runs at once.", min=1, max=10_000)
    ] = 4,
    storage_url: StorageOption = None,
    log_level: LogLevelOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run dispatched jobs on this machine (needs LATLAB_REDIS_URL and the API's store).

    SIGTERM hands its jobs to other workers. Exit status 2: a configuration mistake; 3: the
    store or Redis unreachable at start-up.
    """
    from latlab.cli.logs import StartupLog
    from latlab.cli.startup import reporting_startup
    from latlab.cli.worker import run_worker
    from latlab.settings import Settings

    log = StartupLog()
    with reporting_startup(verbose, log):
        settings = Settings(**given(storage_url=storage_url, log_level=log_level))
        log.set_level(settings.log_level)
        run_worker(settings, location=location, capacity=capacity, log=log)


@app.command()
def workers(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """The live workers: location, capacity, jobs, last heartbeat (from LATLAB_REDIS_URL)."""
    from latlab.cli.fleet_view import show_workers

    show_workers(as_json=as_json)


@app.command()
def report(
    kind: Annotated[str, typer.Argument(metavar="experiment|load-run", help="What to report on.")],
    job_id: Annotated[int, typer.Argument(metavar="ID", min=1, help="Its id.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE.html", help="Where to write it.")
    ],
    server: remote.ServerOption = remote.DEFAULT_SERVER,
    token: remote.TokenOption = None,
) -> None:
    """Save a self-contained HTML report of an experiment or a load run (opens offline).

    Exit status 0: written; 1: the server refused; 2: bad usage or an unwritable file; 3:
    the server cannot be reached.
    """
    from latlab.cli.report import ReportKind, save_report

    if kind not in set(ReportKind):
        raise typer.BadParameter("experiment or load-run", param_hint="'experiment|load-run'")
    raise SystemExit(save_report(ReportKind(kind), job_id, output, server, token or None))


@app.command()
def version() -> None:
    """Print LatLab's version."""
    from latlab import __version__

    typer.echo(__version__)


def _print_version(asked: bool) -> None:
    if asked:
        from latlab import __version__

        typer.echo(__version__)
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """LatLab: latency experiments and load runs against HTTP services."""


def main() -> None:
    app()
