"""The ``latlab`` command. Heavy imports stay inside commands so each starts quickly."""

from __future__ import annotations

from typing import Annotated, Any

import typer

app = typer.Typer(
    name="latlab",
    help="LatLab: latency experiments and load runs against HTTP services.",
    no_args_is_help=True,
    add_completion=False,
)

HostOption = Annotated[str | None, typer.Option(help="Bind address [env LATLAB_HOST].")]
PortOption = Annotated[int | None, typer.Option(help="Port [env LATLAB_PORT].", min=0, max=65535)]


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
) -> None:
    """Run the control API (and the built-in targets on port 8008)."""
    from latlab.cli.serve import run_serve
    from latlab.settings import Settings

    overrides: dict[str, Any] = {"host": host, "port": port, "targets_port": targets_port}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    if no_targets:
        settings = settings.model_copy(update={"targets_enabled": False})
    run_serve(settings)


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
) -> None:
    """Serve only the built-in targets (/api/latency, /sum, /test, ...)."""
    from latlab.cli.serve import run_targets
    from latlab.settings import Settings

    overrides: dict[str, Any] = {
        "targets_host": host,
        "targets_port": port,
        "targets_workers": workers,
    }
    run_targets(Settings(**{k: v for k, v in overrides.items() if v is not None}))


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
