"""``create_app(settings)``: the control API, with a lifespan that owns every resource."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from latlab import __version__
from latlab.api import bots, health, metrics, seed
from latlab.api.body_limit import BodyLimitMiddleware
from latlab.api.docs import document_bearer_token, install_docs
from latlab.api.errors import COMMON_RESPONSES, install_error_handlers
from latlab.api.idempotency import Idempotency
from latlab.api.login import configured_token, login_router
from latlab.api.quotas import CreateRate
from latlab.api.security import PUBLIC_PATHS, SecurityMiddleware
from latlab.api.state import AppState
from latlab.api.v1 import bots as v1_bots
from latlab.api.v1 import events as v1_events
from latlab.api.v1 import experiment_charts, experiments, load_runs, pipeline_runs, workers
from latlab.api.v1 import overview as v1_overview
from latlab.api.v1.targets import TargetCounts, targets_router
from latlab.exporters.prometheus import ControlMetricsPage
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.fleet import FleetWatch
from latlab.jobs.kinds import bind_manager
from latlab.jobs.kinds.bot import BotRunner
from latlab.jobs.kinds.probe_spec import probe_limits
from latlab.jobs.manager import JobManager
from latlab.jobs.queries import count_jobs
from latlab.runtime import Sinks, job_runners, open_run_context
from latlab.serving.heap import freeze_start_up_objects
from latlab.settings import Settings
from latlab.storage import Store
from latlab.storage.writer import BatchWriter
from latlab.web.pages import install_pages

log = logging.getLogger("latlab")


def _metrics_page(
    sinks: Sinks, store: Store, jobs: JobManager, writer: BatchWriter, fleet: FleetWatch | None
) -> ControlMetricsPage:
    return ControlMetricsPage(
        sinks.probe_metrics,
        jobs=functools.partial(count_jobs, store, jobs.kinds()),
        bots_active=lambda: sum(kind == "bot" for kind, _ in jobs.running_here()),
        writer=writer,
        live_clients=lambda: sinks.live.subscriptions,
        influx=None if sinks.influx is None else sinks.influx.stats,
        load=sinks.load_metrics,
        workers=None if fleet is None else fleet.samples,
    )


@asynccontextmanager
async def _resources(settings: Settings) -> AsyncIterator[AppState]:
    async with AsyncExitStack() as stack:
        ctx, sinks = await open_run_context(settings, stack)
        store, writer, coordinator, probes = ctx.store, ctx.writer, ctx.coordinator, ctx.probes
        runners = job_runners(settings)
        shared = None
        if settings.redis_url is not None:
            from latlab.shared import open_shared

            relay_to = [sinks.live, sinks.probe_metrics, sinks.load_metrics]
            lease_s = coordinator.lease_s
            shared = await open_shared(settings, lease_s, stack, sinks.events, relay_to, store)
        executor = InProcessExecutor() if shared is None else shared.executor
        jobs = JobManager(ctx, executor, runners)
        bind_manager(runners, jobs)
        # Registered before start() so that a failed start still cancels what it launched.
        stack.push_async_callback(jobs.shutdown)
        if settings.freeze_gc:  # everything loaded so far lives as long as the process
            freeze_start_up_objects()
        await jobs.start()
        if shared is not None:
            from latlab.shared import start_answering

            start_answering(shared, jobs, store, stack)
        fleet = None if shared is None else shared.fleet
        bot_runner = jobs.runner("bot")
        assert isinstance(bot_runner, BotRunner)
        yield AppState(
            settings=settings,
            store=store,
            jobs=jobs,
            bots=bot_runner,
            probes=probes,
            probe_limits=probe_limits(settings, probes.policy),
            idempotency=Idempotency(store),
            live=sinks.live,
            metrics=_metrics_page(sinks, store, jobs, writer, fleet),
            fleet=fleet,
            owner_requests=None if shared is None else shared.requests,
        )


TargetsHere = tuple[TargetCounts, int]  # the targets' request cells, and their port


def create_app(settings: Settings | None = None, *, targets: TargetsHere | None = None) -> FastAPI:
    """The control API. ``targets``: the built-in targets' counters and port, when they run
    in this process (``latlab serve``), for ``/api/v1/targets`` and the dashboard."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
        async with _resources(settings) as state:
            log.info("LatLab %s ready, store %s", __version__, _redact(settings.storage_url))
            yield {"latlab": state}

    app = FastAPI(
        title="LatLab",
        version=__version__,
        summary="Latency experiments and load runs against HTTP services.",
        lifespan=lifespan,
        docs_url=None,  # served offline by install_docs, from node_modules
        redoc_url=None,
        responses=COMMON_RESPONSES,
    )
    install_error_handlers(app)
    # The last added runs first: Host, token and Origin checks, then the body limit.
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(SecurityMiddleware, settings=settings)
    app.include_router(health.router)
    app.include_router(login_router(settings.api_token, CreateRate().admit))
    app.include_router(metrics.router)
    app.include_router(experiments.router)
    app.include_router(experiment_charts.router)
    app.include_router(v1_events.router)
    app.include_router(v1_overview.router)
    app.include_router(v1_bots.router)
    app.include_router(load_runs.router)
    app.include_router(pipeline_runs.router)
    app.include_router(workers.router)
    app.include_router(targets_router(*(targets or (None, None))))
    app.include_router(bots.router)
    app.include_router(seed.router)
    # The original served these under /api; same handlers, kept out of the schema twice over.
    app.include_router(seed.router, prefix="/api", include_in_schema=False)
    install_docs(app)
    install_pages(app, token_set=configured_token(settings.api_token) is not None)
    if configured_token(settings.api_token) is not None:
        document_bearer_token(app, PUBLIC_PATHS)
    return app


def _redact(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
