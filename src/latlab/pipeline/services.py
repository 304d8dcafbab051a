"""The pipeline's services assembled from settings, in this process.

``open_pipeline(settings, roles)`` opens the queue (if a role needs it), serves each role on
its port and runs the handler's and writer's loops; everything closes on exit. ``pipeline
up`` asks for all four roles; ``pipeline server`` (say) for one, which needs Redis: two
processes cannot share the embedded queue. With ``LATLAB_INFLUX_URL`` set, the services of
this process are also one InfluxDB point each a second (``exporters/influx_pipeline.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path

from latlab.exporters.influx_pipeline import (
    PipelineReporter,
    ServiceTally,
    handler_tally,
    open_pipeline_reporter,
    receiver_tally,
    writer_tally,
)
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import RequestError, parse_url
from latlab.pipeline.client import Client, ClientLimits
from latlab.pipeline.files import Fsync
from latlab.pipeline.guard import TrafficGuard
from latlab.pipeline.handler import Handler
from latlab.pipeline.metrics import MetricsPage
from latlab.pipeline.queue import PipelineQueue, QueueUnavailable, open_queue
from latlab.pipeline.receiver import Receiver
from latlab.pipeline.runs import RunRecorder
from latlab.pipeline.writer import FilesMismatch, OrderedWriter
from latlab.reachable import until_reachable
from latlab.serving.heap import freeze_start_up_objects
from latlab.serving.priority import reclaim_the_cpu, yield_the_cpu
from latlab.serving.routes import Router, route
from latlab.serving.server import HttpServer
from latlab.serving.wire import Request, Response, json_response
from latlab.settings import Settings
from latlab.storage.registry import normalize_url


class Role(StrEnum):
    CLIENT = "client"
    RECEIVER = "receiver"
    HANDLER = "handler"
    WRITER = "writer"


ALL_ROLES = tuple(Role)
QUEUE_ROLES = (Role.RECEIVER, Role.HANDLER, Role.WRITER)


class PipelineError(RuntimeError):
    """A pipeline that cannot start as configured (one line for the user)."""


class QueueUnreachable(PipelineError):
    """The queue did not answer within ``LATLAB_STARTUP_TIMEOUT_S``."""


@dataclass
class Pipeline:
    """What runs in this process: each role's server (its ``port``) and component."""

    servers: dict[Role, HttpServer] = field(default_factory=dict)
    client: Client | None = None
    receiver: Receiver | None = None
    handler: Handler | None = None
    writer: OrderedWriter | None = None
    recorder: RunRecorder | None = None  # runs in the SQL store, for /api/v1/pipeline-runs

    def port(self, role: Role) -> int:
        return self.servers[role].port


@contextlib.asynccontextmanager
async def open_pipeline(
    settings: Settings, roles: Collection[Role], *, in_background: bool = False
) -> AsyncIterator[Pipeline]:
    """The ``roles`` up, their servers listening. ``in_background``: this process yields the
    CPU (``serving/priority.py``) once set up, before it listens, and takes it back to close."""
    pipeline = Pipeline()
    async with contextlib.AsyncExitStack() as stack:
        queue = await _open_queue(settings, roles, stack)
        pipeline.recorder = await _open_recorder(settings, roles, stack)
        reporter = _open_reporter(settings, stack)  # closes once the loops below have stopped
        tallies: dict[Role, ServiceTally] = {}  # each gets its port once it listens
        tasks: list[asyncio.Task[None]] = []
        stack.push_async_callback(_stop, tasks)  # before the queue and the recorder close
        if Role.WRITER in roles and queue is not None:
            pipeline.writer = _writer(settings, queue, pipeline.recorder)
            try:
                await pipeline.writer.check_files()
            except FilesMismatch as exc:
                raise PipelineError(str(exc)) from None
            tallies[Role.WRITER] = _watch(reporter, writer_tally(pipeline.writer))
            tasks.append(asyncio.create_task(pipeline.writer.run()))
        if Role.HANDLER in roles and queue is not None:
            pipeline.handler = Handler(
                queue,
                concurrency=settings.pipeline_concurrency,
                max_tries=settings.pipeline_max_tries,
                lease_s=settings.pipeline_lease_s,
            )
            tallies[Role.HANDLER] = _watch(reporter, handler_tally(pipeline.handler))
            tasks.append(asyncio.create_task(pipeline.handler.run()))
        if settings.freeze_gc:  # set up: what lives now lives as long as the process
            freeze_start_up_objects()  # before yielding the CPU: a starved collection is long
        if in_background:
            yield_the_cpu()
        try:
            await _listen(pipeline, roles, settings, queue, reporter, tallies, stack)
        finally:
            if in_background:  # pushed after the servers: what a stop (or failed listen) does first
                stack.callback(reclaim_the_cpu)
        if pipeline.receiver is not None:
            stack.push_async_callback(pipeline.receiver.close)
        yield pipeline


async def _listen(
    pipeline: Pipeline,
    roles: Collection[Role],
    settings: Settings,
    queue: PipelineQueue | None,
    reporter: PipelineReporter | None,
    tallies: dict[Role, ServiceTally],
    stack: contextlib.AsyncExitStack,
) -> None:
    """A server per role on its port, the client's last."""
    for role in sorted(roles, key=ALL_ROLES.index, reverse=True):
        if role is Role.CLIENT:
            # The client of ``pipeline up`` sends to (and reports on) the services beside it.
            settings = settings.model_copy(update=_local_urls(settings, pipeline))
        router = _router(role, pipeline, settings, queue)
        if role is Role.RECEIVER and pipeline.receiver is not None:
            tallies[Role.RECEIVER] = _watch(reporter, receiver_tally(pipeline.receiver))
        server = HttpServer(router, keep_headers=role in (Role.CLIENT, Role.RECEIVER))
        await server.listen(settings.pipeline_host, _port(settings, role))
        stack.push_async_callback(server.close)
        pipeline.servers[role] = server
        if role in tallies:
            tallies[role].instance = str(server.port)


async def _open_queue(
    settings: Settings, roles: Collection[Role], stack: contextlib.AsyncExitStack
) -> PipelineQueue | None:
    if set(roles) <= {Role.CLIENT}:
        return None  # the client only sends: it needs no queue
    if settings.redis_url is None and not set(QUEUE_ROLES) <= set(roles):
        alone = " and ".join(role.value for role in QUEUE_ROLES if role in roles)
        raise PipelineError(
            f"the {alone} needs LATLAB_REDIS_URL: without Redis the queue is embedded in one "
            "process, so run the services together with `latlab pipeline up`"
        )
    if settings.redis_url is None:
        _check_sql_store(settings.storage_url)

    def opener() -> Awaitable[PipelineQueue]:
        return open_queue(
            redis_url=settings.redis_url,
            storage_url=settings.storage_url,
            redis_prefix=settings.redis_prefix,
            consumer=settings.pipeline_consumer,
            lease_s=settings.pipeline_lease_s,
        )

    hint = "start it, or give it longer with LATLAB_STARTUP_TIMEOUT_S"
    queue = await until_reachable(
        opener,
        settings.startup_timeout_s,
        transient=(QueueUnavailable, OSError),
        gave_up=lambda cause: QueueUnreachable(
            f"the pipeline's queue is unreachable: {cause}: {hint}"
        ),
    )
    stack.push_async_callback(queue.close)
    return queue


async def _open_recorder(
    settings: Settings, roles: Collection[Role], stack: contextlib.AsyncExitStack
) -> RunRecorder | None:
    """The client records its calls and the writer its lines, when the store is SQL."""
    if not {Role.CLIENT, Role.WRITER} & set(roles):
        return None
    recorder = await RunRecorder.open(settings.storage_url)
    stack.push_async_callback(recorder.close)
    return recorder


def _open_reporter(settings: Settings, stack: contextlib.AsyncExitStack) -> PipelineReporter | None:
    """The ``pipeline`` points to InfluxDB, when ``LATLAB_INFLUX_URL`` is set."""
    reporter = open_pipeline_reporter(settings)
    if reporter is not None:
        reporter.start()
        stack.push_async_callback(reporter.close)
    return reporter


def _watch(reporter: PipelineReporter | None, tally: ServiceTally) -> ServiceTally:
    """Made as the service is: its counts from its first request on."""
    if reporter is not None:
        reporter.watch(tally)
    return tally


def _router(
    role: Role, pipeline: Pipeline, settings: Settings, queue: PipelineQueue | None
) -> Router:
    if role is Role.CLIENT:
        pipeline.client = client_of(settings, pipeline.recorder)
        return pipeline.client.router()
    assert queue is not None
    if role is Role.RECEIVER:
        pipeline.receiver = Receiver(
            queue, max_delay_s=settings.pipeline_max_delay_s, guard=_guard(settings)
        )
        return pipeline.receiver.router()
    component = pipeline.handler if role is Role.HANDLER else pipeline.writer
    assert component is not None
    return Router(
        {
            b"/stats": route(lambda request: _stats(role, pipeline, request)),
            b"/metrics": route(MetricsPage(component.figures).handle),
        }
    )


def _check_sql_store(storage_url: str) -> None:
    """The embedded queue needs an SQL store: said at once, not after the start-up wait."""
    scheme = normalize_url(storage_url).partition("://")[0]
    if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise PipelineError(
            "the pipeline's embedded queue needs an SQL store (LATLAB_STORAGE_URL sqlite or "
            "postgresql) or LATLAB_REDIS_URL"
        )


def client_of(settings: Settings, recorder: RunRecorder | None = None) -> Client:
    """The client service's sender, from the settings (``latlab pipeline send`` uses it);
    ``recorder`` hears of each call's start and end."""
    try:
        receiver = parse_url(settings.pipeline_receiver_url.rstrip("/") + "/handler")
    except RequestError as exc:
        raise PipelineError(f"LATLAB_PIPELINE_RECEIVER_URL: {exc}") from None
    limits = ClientLimits(
        settings.pipeline_max_connections,
        settings.pipeline_max_requests,
        settings.pipeline_max_delay_s,
    )
    token = settings.api_token.get_secret_value() if settings.api_token else None
    policy = TargetPolicy.from_settings(settings)
    services = {
        "receiver": settings.pipeline_receiver_url,
        "handler": settings.pipeline_handler_url,
        "writer": settings.pipeline_writer_url,
    }
    hooks = recorder if recorder is not None and recorder.enabled else None
    return Client(
        receiver,
        policy,
        limits,
        started=None if hooks is None else hooks.started,
        finished=None if hooks is None else hooks.finished,
        guard=_guard(settings),
        token=token or None,
        services=services,
    )


def _guard(settings: Settings) -> TrafficGuard:
    """The control API's Host, token and Origin rules, for the services that take traffic."""
    return TrafficGuard(settings.api_token, settings.allowed_hosts)


def _stats(role: Role, pipeline: Pipeline, _request: Request) -> Response:
    if role is Role.HANDLER and pipeline.handler is not None:
        handler = pipeline.handler
        counts = {"in_flight": handler.in_flight, "processed": handler.processed}
        return json_response(HTTPStatus.OK, {**counts, "failed": handler.failed})
    writer = pipeline.writer
    assert writer is not None
    return json_response(
        HTTPStatus.OK,
        {
            "receipts_written": writer.receipts.lines,
            "results_written": writer.results.lines,
            "waiting": writer.waiting,
        },
    )


def _local_urls(settings: Settings, pipeline: Pipeline) -> dict[str, str]:
    host = settings.pipeline_host
    return {
        f"pipeline_{role.value}_url": _local_url(host, server.port)
        for role, server in pipeline.servers.items()
    }


def _local_url(host: str, port: int) -> str:
    """The URL of a service of this process listening on ``host`` (any address: loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _port(settings: Settings, role: Role) -> int:
    ports = {
        Role.CLIENT: settings.pipeline_client_port,
        Role.RECEIVER: settings.pipeline_receiver_port,
        Role.HANDLER: settings.pipeline_handler_port,
        Role.WRITER: settings.pipeline_writer_port,
    }
    return ports[role]


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _writer(
    settings: Settings, queue: PipelineQueue, recorder: RunRecorder | None
) -> OrderedWriter:
    out_dir = Path(settings.pipeline_out_dir).expanduser()
    written = recorder.written if recorder is not None and recorder.enabled else None
    try:
        return OrderedWriter(queue, out_dir, Fsync(settings.pipeline_fsync), written)
    except (OSError, ValueError) as exc:
        raise PipelineError(f"LATLAB_PIPELINE_OUT_DIR {str(out_dir)!r}: {exc}") from None
