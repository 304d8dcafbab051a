"""What jobs run with, opened the same by the API process and by a worker: the store and its
writer, Redis or local coordination, the probe client, and the sinks measurements go to.
Nothing here needs the web framework, so ``latlab worker`` starts without importing it.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from latlab.coordination import open_coordinator
from latlab.exporters.influx import InfluxExporter, open_exporter
from latlab.exporters.influx_load import InfluxLoadSink
from latlab.exporters.influx_probes import InfluxProbeSink
from latlab.exporters.prometheus import LoadMetrics, ProbeMetrics
from latlab.jobs.clock import SystemClock
from latlab.jobs.events import Events
from latlab.jobs.kinds import builtin_runners
from latlab.jobs.live import LiveHub
from latlab.jobs.runner import JobRunner, RunContext
from latlab.measure.client import ProbeClient
from latlab.settings import Settings
from latlab.storage import open_store
from latlab.storage.writer import BatchWriter


@dataclass(frozen=True, slots=True)
class Sinks:
    """Where the event seam delivers, besides the store."""

    events: Events
    live: LiveHub
    probe_metrics: ProbeMetrics
    influx: InfluxExporter | None
    load_metrics: LoadMetrics


async def _open_sinks(settings: Settings, stack: AsyncExitStack) -> Sinks:
    events = Events()
    live = LiveHub(settings.events_buffer)
    probe_metrics = ProbeMetrics(settings.metrics_max_experiments)
    load_metrics = LoadMetrics()
    for sink in (live, probe_metrics, load_metrics):
        events.subscribe(sink)
    influx = open_exporter(settings)
    if influx is not None:
        influx.start()
        # Closed last (the stack unwinds in reverse): the writer's last commits reach it first.
        stack.push_async_callback(influx.close)
        events.subscribe(InfluxProbeSink(influx))
        events.subscribe(InfluxLoadSink(influx))
    return Sinks(events, live, probe_metrics, influx, load_metrics)


async def open_run_context(settings: Settings, stack: AsyncExitStack) -> tuple[RunContext, Sinks]:
    """What jobs run with (store, writer, Redis or local coordination, probes) and where
    measurements go; everything closed by ``stack``. The API and a worker open the same."""
    sinks = await _open_sinks(settings, stack)
    store = await open_store(settings.storage_url, settings.startup_timeout_s)
    stack.push_async_callback(store.close)
    writer = await stack.enter_async_context(
        BatchWriter(
            store,
            max_results=settings.write_batch_size,
            delay_s=settings.write_batch_delay_s,
            committed=sinks.events.committed,  # the seam: sinks hear of results once stored
        )
    )
    coordinator = await open_coordinator(
        settings.redis_url, settings.redis_prefix, settings.startup_timeout_s
    )
    stack.push_async_callback(coordinator.close)
    probes = ProbeClient.from_settings(settings)
    return RunContext(store, writer, SystemClock(), probes, coordinator, sinks.events), sinks


def job_runners(settings: Settings) -> list[JobRunner]:
    return builtin_runners(
        bot_tick_s=settings.bots_tick_s,
        bot_log_ticks=settings.bots_log_ticks,
        stats_flush_results=settings.stats_flush_results,
        load_ca_file=settings.probe_ca_file,
    )
