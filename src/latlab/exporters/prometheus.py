"""Prometheus text exposition: probe latencies per experiment, and the control API's gauges.

prometheus-client's own metric objects take a lock per observation; a probe result costs
more than it should that way, on the event loop, for every probe. So the sink below keeps
plain counters (a list of bucket counts per series, found with ``bisect``) and custom
collectors turn them into metric families only when a page is rendered. Nothing is global:
each page renders a ``CollectorRegistry`` of its own, so nothing else leaks into it.

Label cardinality is bounded: past ``max_experiments`` experiments with series, the rest
are summed under ``experiment="other"``. A deleted experiment's series go away and free its
slot for a new experiment; ``other`` keeps what it summed (its counters never go back).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from latlab.exporters.base import LoadSecond, LoadTags, ProbeTags, SinkBase, status_class
from latlab.exporters.influx import InfluxStats
from latlab.exporters.prometheus_fleet import FleetCollector, WorkerSample
from latlab.storage.records import JobState, ProbeResult

# Upper bounds of the latency histogram, 0.1 ms to 10 s; kept in ms so that a result needs
# no division: its latency_ms is looked up as it is.
BUCKET_BOUNDS_MS = (
    *(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0),
    *(100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0),
)
BUCKET_LABELS = [repr(bound / 1000) for bound in BUCKET_BOUNDS_MS] + ["+Inf"]  # 0.0001 … 10.0
OTHER = "other"
ERROR = "error"

INFLUX_FIGURES = (  # (InfluxStats field, family, name, help): the targets show the same
    (
        "backlog_points",
        GaugeMetricFamily,
        "latlab_influx_backlog_points",
        "Points not yet written to InfluxDB",
    ),
    ("sent_points", CounterMetricFamily, "latlab_influx_points_sent", "Points written to InfluxDB"),
    (
        "dropped_points",
        CounterMetricFamily,
        "latlab_influx_points_dropped",
        "Points dropped: a full backlog, or refused by InfluxDB",
    ),
    ("errors", CounterMetricFamily, "latlab_influx_write_errors", "Failed InfluxDB write attempts"),
)


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The page of ``registry`` in the text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def registry_of(*collectors: Collector) -> CollectorRegistry:
    """A registry of these collectors only (``auto_describe`` off: nothing is collected twice)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def influx_metrics(stats: InfluxStats) -> Iterator[Metric]:
    """The figures of an InfluxDB exporter."""
    for field, family, name, documentation in INFLUX_FIGURES:
        yield family(name, documentation, value=getattr(stats, field))


class _Series:
    """One (experiment, status class): non-cumulative bucket counts, their sum, all results."""

    __slots__ = ("buckets", "results", "sum_ms")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKET_BOUNDS_MS) + 1)  # the last one: past 10 s
        self.sum_ms = 0.0
        self.results = 0  # failed probes too, which have no duration


class ProbeMetrics(SinkBase, Collector):
    """A sink that counts probe results, and the collector of what it counted."""

    def __init__(self, max_experiments: int) -> None:
        self._max_experiments = max_experiments
        self._labels: dict[int, str] = {}  # experiment id -> its label, or OTHER
        self._own_labels = 0  # experiments with series of their own
        # label -> (location, status class) -> counts; the location is "" but for the series
        # of an experiment run at several locations
        self._series: dict[str, dict[tuple[str, str], _Series]] = {}

    def probed(self, experiment_id: int, tags: ProbeTags, results: Sequence[ProbeResult]) -> None:
        by_class = self._series_of(experiment_id)
        location = tags.location
        for result in results:
            klass = status_class(result)
            series = by_class.get((location, klass))
            if series is None:
                series = by_class[location, klass] = _Series()
            series.results += 1
            if klass != ERROR:
                latency_ms = result.latency_ms
                series.buckets[bisect_left(BUCKET_BOUNDS_MS, latency_ms)] += 1
                series.sum_ms += latency_ms

    def _series_of(self, experiment_id: int) -> dict[tuple[str, str], _Series]:
        label = self._labels.get(experiment_id)
        if label is None:
            # Once summed under "other", always: its counts cannot be taken back out of it.
            label = OTHER
            if self._own_labels < self._max_experiments:
                label = str(experiment_id)
                self._own_labels += 1
            self._labels[experiment_id] = label
        by_class = self._series.get(label)
        if by_class is None:
            by_class = self._series[label] = {}
        return by_class

    def deleted(self, kind: str, job_id: int) -> None:
        if kind != "probe":
            return
        label = self._labels.pop(job_id, None)
        if label is not None and label != OTHER:
            self._own_labels -= 1
            self._series.pop(label, None)

    def collect(self) -> Iterable[Metric]:
        labels = ["experiment", "location", "status_class"]
        durations = HistogramMetricFamily(
            "latlab_probe_duration_seconds", "Latency of probes that got a response", labels=labels
        )
        results = CounterMetricFamily(
            "latlab_probe_results",
            "Probe results, failed ones as status_class=error",
            labels=labels,
        )
        # Copies: a page may be rendered in another thread while probes are counted.
        for label, by_class in list(self._series.items()):
            for (location, klass), series in list(by_class.items()):
                buckets = list(series.buckets)
                names = [label, location, klass]
                results.add_metric(names, series.results)
                if klass != ERROR:
                    durations.add_metric(names, cumulative(buckets), series.sum_ms / 1e3)
        return [durations, results]


class LoadMetrics(SinkBase, Collector):
    """A sink that counts load runs' requests and keeps their last second's figures.

    One label value per run, the newest ``max_runs`` kept (a run's series go with it when it
    is deleted or pushed out): load runs are few, their seconds many.
    """

    def __init__(self, max_runs: int = 100) -> None:
        self._max_runs = max_runs
        self._runs: dict[int, tuple[int, int, LoadSecond]] = {}  # requests, errors, last

    def load_second(self, tags: LoadTags, second: LoadSecond) -> None:
        requests, errors, _ = self._runs.pop(second.run_id, (0, 0, second))
        self._runs[second.run_id] = (requests + second.requests, errors + second.errors, second)
        while len(self._runs) > self._max_runs:
            del self._runs[next(iter(self._runs))]  # the one that reported least recently

    def deleted(self, kind: str, job_id: int) -> None:
        if kind == "load":
            self._runs.pop(job_id, None)

    def collect(self) -> Iterable[Metric]:
        labels = ["run"]
        requests = CounterMetricFamily(
            "latlab_load_requests", "Requests a load run finished", labels=labels
        )
        errors = CounterMetricFamily(
            "latlab_load_errors", "Transport errors and unexpected statuses", labels=labels
        )
        rate = GaugeMetricFamily(
            "latlab_load_rate_rps", "Requests finished in the run's last second", labels=labels
        )
        latency = GaugeMetricFamily(
            "latlab_load_latency_seconds",
            "Latency quantiles of the run's last second",
            labels=[*labels, "quantile"],
        )
        for run_id, (total, failed, last) in list(self._runs.items()):
            label = [str(run_id)]
            requests.add_metric(label, total)
            errors.add_metric(label, failed)
            rate.add_metric(label, last.rps)
            for quantile, value in (
                ("0.5", last.p50_ms),
                ("0.9", last.p90_ms),
                ("0.99", last.p99_ms),
            ):
                if value is not None:
                    latency.add_metric([*label, quantile], value / 1000)
        return [requests, errors, rate, latency]


def cumulative(buckets: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as the text format wants them: cumulative, labelled by bound."""
    total = 0
    running: list[tuple[str, float]] = []
    for label, count in zip(BUCKET_LABELS, buckets, strict=True):
        total += count
        running.append((label, total))
    return running


class WriterGauges(Protocol):
    """What the batch writer tells about itself."""

    @property
    def queue_depth(self) -> int: ...

    @property
    def last_commit_age_s(self) -> float | None: ...


JobCounts = Mapping[tuple[str, str], int]  # (kind, state) -> jobs


@dataclass(frozen=True, slots=True)
class ControlSnapshot:
    """The control API's gauges at one instant."""

    jobs: JobCounts
    bots_active: int
    writer_queue_depth: int
    writer_last_commit_age_s: float | None  # None: nothing committed yet
    live_clients: int = 0
    influx: InfluxStats | None = None  # the probe exporter's, when there is one


class SnapshotCollector(Collector):
    def __init__(self, snapshot: ControlSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot
        yield _jobs_family(snapshot.jobs)
        yield GaugeMetricFamily("latlab_bots_active", "Bots running", value=snapshot.bots_active)
        yield GaugeMetricFamily(
            "latlab_writer_queue_depth",
            "Records waiting for the batch writer",
            value=snapshot.writer_queue_depth,
        )
        age = GaugeMetricFamily(
            "latlab_writer_last_commit_age_seconds", "Time since the batch writer last committed"
        )
        if snapshot.writer_last_commit_age_s is not None:  # no sample before the first commit
            age.add_metric([], snapshot.writer_last_commit_age_s)
        yield age
        yield GaugeMetricFamily(
            "latlab_live_clients",
            "Live-feed (SSE) connections open; a client dropped for being slow no longer counts",
            value=snapshot.live_clients,
        )
        if snapshot.influx is not None:
            yield from influx_metrics(snapshot.influx)


def _jobs_family(jobs: JobCounts) -> GaugeMetricFamily:
    family = GaugeMetricFamily("latlab_jobs", "Jobs by kind and state", labels=["kind", "state"])
    # Every state of every kind present, 0s included: a series that vanishes is not a 0.
    counts = {(kind, state.value): 0 for kind, _ in jobs for state in JobState}
    counts.update(jobs)
    for (kind, state), count in sorted(counts.items()):
        family.add_metric([kind, state], count)
    return family


class ControlMetricsPage:
    """``GET /metrics`` of the control API: render with ``await page.render()``."""

    def __init__(
        self,
        probes: ProbeMetrics,
        *,
        jobs: Callable[[], Awaitable[JobCounts]],
        bots_active: Callable[[], int],
        writer: WriterGauges,
        live_clients: Callable[[], int] = lambda: 0,
        influx: InfluxStats | None = None,
        load: LoadMetrics | None = None,
        workers: Callable[[], Sequence[WorkerSample]] | None = None,
    ) -> None:
        self._probes = probes
        self._workers = workers
        self._load = load
        self._live_clients = live_clients
        self._jobs = jobs
        self._bots_active = bots_active
        self._writer = writer
        self._influx = influx

    async def snapshot(self) -> ControlSnapshot:
        influx = None if self._influx is None else replace(self._influx)  # as of now
        return ControlSnapshot(
            jobs=await self._jobs(),
            bots_active=self._bots_active(),
            writer_queue_depth=self._writer.queue_depth,
            writer_last_commit_age_s=self._writer.last_commit_age_s,
            live_clients=self._live_clients(),
            influx=influx,
        )

    async def render(self) -> tuple[bytes, str]:
        """The page and its content type, after reading the store.

        Formatting is prometheus-client's, about 10 µs a sample: with a thousand experiments
        that is some 200 ms, which would hold up every probe on the event loop. So it runs in
        a thread (``ProbeMetrics.collect`` copies what it reads; a probe counted meanwhile is
        in this page or the next).
        """
        collectors: list[Collector] = [self._probes, SnapshotCollector(await self.snapshot())]
        if self._load is not None:
            collectors.append(self._load)
        if self._workers is not None:
            collectors.append(FleetCollector(self._workers()))
        registry = registry_of(*collectors)
        return await asyncio.to_thread(render, registry)
