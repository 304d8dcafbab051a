"""``latlab pipeline``: the four services of seed 002, together or one by one, and ``send``.

latlab pipeline up --out-dir ./pipeline-out     # all four in one process, embedded queue
latlab pipeline server --port 5001              # one service (needs LATLAB_REDIS_URL)
latlab pipeline send -c 100 -n 1000 --delay-range 5
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from latlab.cli.options import LogLevelOption, StorageOption, given
from latlab.cli.startup import UNREACHABLE, StartupError, reporting_startup

if TYPE_CHECKING:
    from latlab.settings import Settings

logger = logging.getLogger("latlab.pipeline")

pipeline_app = typer.Typer(
    help="The pipeline: client → receiver → handler → writer, in receipt order.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _port(service: str, default: int) -> Any:
    env = f"LATLAB_PIPELINE_{service.upper()}_PORT"
    return typer.Option(
        min=0, max=65535, help=f"The {service}'s port [env {env}; default {default}]."
    )


ClientPort = Annotated[int | None, _port("client", 5000)]
ReceiverPort = Annotated[int | None, _port("receiver", 5001)]
HandlerPort = Annotated[int | None, _port("handler", 5002)]
WriterPort = Annotated[int | None, _port("writer", 5003)]
OutDir = Annotated[
    str | None,
    typer.Option(
        help="Where 2.txt and 1.txt go [env LATLAB_PIPELINE_OUT_DIR; default pipeline-out]."
    ),
]
ServerUrl = Annotated[
    str | None,
    typer.Option(
        help="The receiver's URL [env LATLAB_PIPELINE_RECEIVER_URL; default http://127.0.0.1:5001]."
    ),
]
Host = Annotated[
    str | None,
    typer.Option(help="Bind address [env LATLAB_PIPELINE_HOST; default 127.0.0.1]."),
]


def _given(
    storage_url: str | None = None, log_level: str | None = None, **options: Any
) -> dict[str, Any]:
    """The pipeline's options given on the command line, and the store and log level."""
    pipeline = {f"pipeline_{name}": value for name, value in given(**options).items()}
    return {**pipeline, **given(storage_url=storage_url, log_level=log_level)}


@pipeline_app.command()
def up(
    out_dir: OutDir = None,
    host: Host = None,
    client_port: ClientPort = None,
    receiver_port: ReceiverPort = None,
    handler_port: HandlerPort = None,
    writer_port: WriterPort = None,
    storage_url: StorageOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """All four services in this process (ports 5000 to 5003); the queue in LatLab's store."""
    run_services(
        _given(
            storage_url,
            log_level,
            out_dir=out_dir,
            host=host,
            client_port=client_port,
            receiver_port=receiver_port,
            handler_port=handler_port,
            writer_port=writer_port,
        ),
        ("client", "receiver", "handler", "writer"),
    )


@pipeline_app.command()
def client(
    port: ClientPort = None,
    server_url: ServerUrl = None,
    host: Host = None,
    storage_url: StorageOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """The client (5000): GET /?connection_count=&connection_value=&delay_range= sends a run."""
    chosen = _given(storage_url, log_level, client_port=port, receiver_url=server_url, host=host)
    run_services(chosen, ("client",))


@pipeline_app.command()
def server(
    port: ReceiverPort = None,
    host: Host = None,
    storage_url: StorageOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """The receiver (5001): POST /handler enqueues durably and answers at once."""
    run_services(_given(storage_url, log_level, receiver_port=port, host=host), ("receiver",))


@pipeline_app.command()
def process(
    port: HandlerPort = None,
    host: Host = None,
    storage_url: StorageOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """The handler (5002): processes the queue, many requests at once."""
    run_services(_given(storage_url, log_level, handler_port=port, host=host), ("handler",))


@pipeline_app.command()
def save(
    port: WriterPort = None,
    out_dir: OutDir = None,
    host: Host = None,
    storage_url: StorageOption = None,
    log_level: LogLevelOption = None,
) -> None:
    """The writer (5003): 2.txt and 1.txt, both in receipt order."""
    chosen = _given(storage_url, log_level, writer_port=port, out_dir=out_dir, host=host)
    run_services(chosen, ("writer",))


@pipeline_app.command()
def send(
    connections: Annotated[int, typer.Option("-c", "--connections", min=1)] = 10,
    requests: Annotated[int, typer.Option("-n", "--requests", min=1)] = 10,
    delay_range: Annotated[int, typer.Option("--delay-range", min=0)] = 5,
    delay_unit: Annotated[str, typer.Option("--delay-unit", help="s or ms")] = "s",
    server_url: ServerUrl = None,
    storage_url: StorageOption = None,
) -> None:
    """Send one run to the receiver, as the client service's GET / does; print its JSON."""
    from latlab.serving.runner import run

    overrides = _given(storage_url, receiver_url=server_url)
    query = (
        f"connection_count={connections}&connection_value={requests}"
        f"&delay_range={delay_range}&delay_unit={delay_unit}"
    )
    with reporting_startup(verbose=False):
        result = run(_send_once(overrides, query))
    sys.stdout.write(json.dumps(result) + "\n")
    if result["errors"]:
        raise SystemExit(1)


async def _send_once(overrides: Mapping[str, Any], query: str) -> dict[str, Any]:
    from latlab.measure.load.preflight import TargetRefused, TargetUnreachable
    from latlab.pipeline.client import parse_call
    from latlab.pipeline.receipts import BadRequest
    from latlab.pipeline.runs import RunRecorder
    from latlab.pipeline.services import PipelineError, client_of
    from latlab.settings import Settings

    settings = Settings(**overrides)
    recorder = await RunRecorder.open(settings.storage_url)  # the run, for the control API
    try:
        try:
            client = client_of(settings, recorder)
            call = parse_call(query.encode(), client.limits)
            address = await client.reach()
        except (BadRequest, PipelineError, TargetRefused) as exc:
            raise StartupError(str(exc)) from None
        except TargetUnreachable as exc:
            raise StartupError(f"receiver {client.receiver.authority}: {exc}", 1) from None
        return (await client.send(call, address)).to_json()
    finally:
        await recorder.close()


def run_services(overrides: Mapping[str, Any], roles: Collection[str]) -> None:
    from latlab.serving.runner import run

    with reporting_startup(verbose=False):
        run(_serve(overrides, roles))


async def _serve(overrides: Mapping[str, Any], roles: Collection[str]) -> None:
    from latlab.cli.binding import is_bind_error
    from latlab.pipeline.services import PipelineError, QueueUnreachable, Role, open_pipeline
    from latlab.serving.signals import stop_on_signals
    from latlab.settings import Settings

    settings = Settings(**overrides)
    _configure_logging(settings.log_level)
    _check_exposure(settings)
    # Processing and writing are throughput work: on a shared machine they run on the CPU
    # the receiver leaves, whose acknowledgements are what clients wait for. SCHED_IDLE lets
    # a waking receiver or Redis preempt them at once; niceness +10 alone let them hold a
    # core for milliseconds (ack p99 13-18 ms instead of 9-11 ms at 5,000 req/s, bench/).
    in_background = not {"client", "receiver"} & set(roles)
    stop = asyncio.Event()
    with stop_on_signals(stop):
        try:
            async with open_pipeline(
                settings, [Role(role) for role in roles], in_background=in_background
            ) as pipeline:
                for role, running in pipeline.servers.items():
                    logger.info(
                        "pipeline %s on http://%s:%d", role, settings.pipeline_host, running.port
                    )
                await stop.wait()
                logger.info("pipeline: shutting down")
        except QueueUnreachable as exc:
            raise StartupError(str(exc), UNREACHABLE) from None
        except PipelineError as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            if not is_bind_error(exc):
                raise
            raise StartupError(
                f"cannot listen: {exc.strerror or exc}: choose other ports"
            ) from None


def _check_exposure(settings: Settings) -> None:
    """As ``latlab serve``: no service beyond this machine without a token, unless told."""
    from latlab.cli.binding import has_token, is_loopback

    if has_token(settings) or settings.insecure or is_loopback(settings.pipeline_host):
        return
    raise StartupError(
        f"refusing to serve the pipeline on {settings.pipeline_host} without a token: set "
        "LATLAB_API_TOKEN, or LATLAB_INSECURE=true to serve it to the network unprotected"
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
