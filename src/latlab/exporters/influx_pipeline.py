"""The pipeline's services, second by second, as InfluxDB points through the ``InfluxExporter``.

    pipeline,host=lab-1,instance=5003,service=writer receipts_written=50i,results_written=48i,
        waiting=2i,end_to_end_p50_ms=41.25,end_to_end_p99_ms=97.5 1700000000000000000

(one line), tagged by the machine's host name, the port the service listens on (``instance``:
two handlers on one machine are two series) and the service. Every second, one point per
service running in this process (receiver, handler, writer), idle or not: a gap means "not
running", never "idle". Counts are those of that second (the difference of the services'
counters, which they keep anyway); gauges are read at its end. The writer's latency percentiles
come from the difference of its ``/metrics`` histogram buckets, interpolated within a bucket as
Prometheus's ``histogram_quantile`` does, so a second costs a copy of 17 integers, nothing per
request; a second without a result line has none (line protocol has no null).

Seconds are wall-clock seconds and a point is stamped with the start of its second; the first
interval after start-up is stamped with the start time instead, so that a restart within a
second adds a point rather than overwriting the one written at shutdown. At shutdown the
partial second is reported, then the exporter gets its bounded last try to write.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence

from latlab.exporters.influx import InfluxExporter, escape_tag, open_exporter
from latlab.exporters.periods import PeriodicReporter
from latlab.exporters.prometheus import BUCKET_BOUNDS_MS
from latlab.pipeline.handler import Handler
from latlab.pipeline.metrics import LatencyBuckets
from latlab.pipeline.receiver import Receiver
from latlab.pipeline.writer import OrderedWriter
from latlab.settings import Settings

MEASUREMENT = "pipeline"
PERIOD_S = 1.0
QUANTILES = (("p50", 0.5), ("p99", 0.99))
RETRY_MAX_S = 5.0  # points are small and frequent: a returning InfluxDB is seen soon

Fields = dict[str, int | float]
Read = Callable[[], int]


def pipeline_line(
    service: str, host: str, fields: Fields, stamp_ns: int, instance: str = ""
) -> str:
    """One point; integers get line protocol's ``i``, floats their shortest ``repr``. Tags in
    key order, as InfluxDB keeps them; an empty one is left out (line protocol forbids it)."""
    tags = {"host": host, "instance": instance, "service": service}
    tag_text = "".join(f",{key}={escape_tag(value)}" for key, value in tags.items() if value)
    values = ",".join(
        f"{name}={value}i" if isinstance(value, int) else f"{name}={float(value)!r}"
        for name, value in fields.items()
    )
    return f"{MEASUREMENT}{tag_text} {values} {stamp_ns}"


def bucket_quantile(counts: Sequence[int], quantile: float) -> float:
    """The ``quantile`` (0..1) of latencies counted in ``BUCKET_BOUNDS_MS`` buckets (the last
    one unbounded), in ms: linear within the bucket it falls in; past the last bound, that
    bound. ``counts`` must not all be zero."""
    rank = quantile * sum(counts)
    below = 0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            if index == len(BUCKET_BOUNDS_MS):
                return BUCKET_BOUNDS_MS[-1]
            lower = BUCKET_BOUNDS_MS[index - 1] if index else 0.0
            upper = BUCKET_BOUNDS_MS[index]
            return lower + (upper - lower) * (rank - below) / count
        below += count
    raise ValueError("no latency counted")


class LatencyTally:
    """The percentiles of what a histogram counted since the last call."""

    def __init__(self, name: str, buckets: LatencyBuckets) -> None:
        self._name = name
        self._buckets = buckets
        self._last = list(buckets.buckets)

    def fields(self) -> Fields:
        now = list(self._buckets.buckets)
        counts = [after - before for after, before in zip(now, self._last, strict=True)]
        self._last = now
        if not any(counts):
            return {}
        return {
            f"{self._name}_{label}_ms": round(bucket_quantile(counts, quantile), 3)
            for label, quantile in QUANTILES
        }


class ServiceTally:
    """A service's fields for the point of each second: counters as differences since the
    last call (from their values when the tally was made), gauges as they are."""

    def __init__(
        self,
        service: str,
        counters: Mapping[str, Read],
        gauges: Mapping[str, Read] | None = None,
        latency: LatencyTally | None = None,
    ) -> None:
        self.service = service
        self.instance = ""  # the port it serves on, once known: two on one host stay apart
        self._counters = counters
        self._gauges = gauges or {}
        self._latency = latency
        self._last = {name: read() for name, read in counters.items()}

    def fields(self) -> Fields:
        fields: Fields = {}
        for name, read in self._counters.items():
            value = read()
            fields[name], self._last[name] = value - self._last[name], value
        fields.update((name, read()) for name, read in self._gauges.items())
        if self._latency is not None:
            fields.update(self._latency.fields())
        return fields


def receiver_tally(receiver: Receiver) -> ServiceTally:
    counters = {
        "received": lambda: receiver.received,
        "refused": lambda: receiver.refused,
        "enqueue_failed": lambda: receiver.failed,  # valid, but the queue could not take it
    }
    return ServiceTally("receiver", counters)


def handler_tally(handler: Handler) -> ServiceTally:
    counters = {"processed": lambda: handler.processed, "failed": lambda: handler.failed}
    return ServiceTally("handler", counters, {"in_flight": lambda: handler.in_flight})


def writer_tally(writer: OrderedWriter) -> ServiceTally:
    counters = {
        "receipts_written": lambda: writer.receipts.lines,
        "results_written": lambda: writer.results.lines,
    }
    gauges = {"waiting": lambda: writer.waiting}
    return ServiceTally("writer", counters, gauges, LatencyTally("end_to_end", writer.end_to_end))


class PipelineReporter(PeriodicReporter):
    """Every ``period_s`` of wall-clock time, a point per watched service to ``exporter``."""

    def __init__(self, exporter: InfluxExporter, host: str, period_s: float = PERIOD_S) -> None:
        super().__init__(exporter, period_s)
        self._host = host
        self._tallies: list[ServiceTally] = []

    def watch(self, tally: ServiceTally) -> None:
        """Report this service too, from now on."""
        self._tallies.append(tally)

    def period_lines(self, stamp_ns: int) -> list[str]:
        return [
            pipeline_line(tally.service, self._host, tally.fields(), stamp_ns, tally.instance)
            for tally in self._tallies
        ]


def open_pipeline_reporter(settings: Settings) -> PipelineReporter | None:
    """The reporter of this process's services (not started); ``None`` without a URL."""
    exporter = open_exporter(settings, retry_max_s=RETRY_MAX_S)
    if exporter is None:
        return None
    return PipelineReporter(exporter, socket.gethostname())
