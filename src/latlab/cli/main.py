"""The ``latlab`` command. Heavy imports stay inside commands so each starts quickly."""

from __future__ import annotations

from typing import Annotated, Any

import typer

app = typer.Typer(
    name="latlab",
    help="LatLab: latency experiments and load runs against HTTP services.",
    no_args_is_help=True,
    add_completion=False,
    # A crash report must not print local variables: the API token is one of them.
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

HostOption = Annotated[str | None, typer.Option(help="Bind address [env LATLAB_HOST].")]
PortOption = Annotated[int | None, typer.Option(help="Port [env LATLAB_PORT].", min=0, max=65535)]
TokenOption = Annotated[
    str | None,
    typer.Option(
        help="Bearer token the API asks for; prefer the env var, which `ps` does not show "
        "[env LATLAB_API_TOKEN].",
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


def _given(**options: Any) -> dict[str, Any]:
    """The options given on the command line; the rest come from the environment."""
    return {name: value for name, value in options.items() if value is not None}


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    targets_port: Annotated[
        int | None,
        typer.Option(help="Port of the built-in targets [env LATLAB_TARGETS_PORT].", min=0),
    ] = None,
    no_targets: Annotated[
        bool, typer.Option("--no-targets", help="Do not serve the built-in targets.")
    ] = False,
    token: TokenOption = None,
    insecure: InsecureOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run the control API (and the built-in targets on port 8008).

    Exit status 2: a configuration mistake; 3: the store or Redis unreachable at start-up.
    """
    from latlab.cli.serve import run_serve

    overrides = _given(host=host, port=port, targets_port=targets_port, api_token=token)
    if no_targets:
        overrides["targets_enabled"] = False
    if insecure:
        overrides["insecure"] = True
    run_serve(overrides, verbose=verbose)


@app.command()
def targets(
    host: Annotated[
        str | None, typer.Option(help="Bind address [env LATLAB_TARGETS_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port [env LATLAB_TARGETS_PORT].", min=0, max=65535)
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Server processes [env LATLAB_TARGETS_WORKERS].", min=1, max=64),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Serve only the built-in targets (/api/latency, /sum, /test, ...)."""
    from latlab.cli.serve import run_targets

    overrides = _given(targets_host=host, targets_port=port, targets_workers=workers)
    run_targets(overrides, verbose=verbose)


@app.command()
def bot(
    start_number: Annotated[int, typer.Argument(help="First number to print.")] = 0,
    tick_s: Annotated[float, typer.Option(help="Seconds between numbers.", min=0.001)] = 1.0,
) -> None:
    """The standalone robot: print START_NUMBER, +1, … once a second until Ctrl-C."""
    from latlab.bots.robot import run_robot

    run_robot(start_number, tick_s)


@app.command()
def version() -> None:
    """Print LatLab's version."""
    from latlab import __version__

    typer.echo(__version__)


def main() -> None:
    app()
