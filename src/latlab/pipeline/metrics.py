"""``/metrics`` of the pipeline's services, in the Prometheus text format.

Counts are read from the services when scraped (the hot path pays nothing); the two
latencies are bucketed as they happen, one ``bisect`` each: the receiver's enqueue time
(request in → durable, what an acknowledgement waits for) and the writer's end-to-end time
(``receive_time`` → the result line written).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from http import HTTPStatus

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from latlab.exporters.prometheus import BUCKET_BOUNDS_MS, cumulative, registry_of, render
from latlab.serving.wire import Request, Response, encode_response


class LatencyBuckets:
    """A histogram in Prometheus's buckets (0.1 ms to 10 s), cheap to add to."""

    __slots__ = ("buckets", "count", "sum_ms")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKET_BOUNDS_MS) + 1)
        self.sum_ms = 0.0
        self.count = 0

    def add(self, latency_ms: float) -> None:
        self.buckets[bisect_left(BUCKET_BOUNDS_MS, latency_ms)] += 1
        self.sum_ms += latency_ms
        self.count += 1

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation)
        family.add_metric([], cumulative(self.buckets), self.sum_ms / 1000)
        return family


class _ServiceCollector(Collector):
    def __init__(self, figures: Callable[[], Iterable[Metric]]) -> None:
        self._figures = figures

    def collect(self) -> Iterable[Metric]:
        yield from self._figures()


class MetricsPage:
    """The ``/metrics`` route of one service."""

    def __init__(self, figures: Callable[[], Iterable[Metric]]) -> None:
        self._registry = registry_of(_ServiceCollector(figures))

    def handle(self, _request: Request) -> Response:
        body, content_type = render(self._registry)
        return encode_response(HTTPStatus.OK, content_type, body, counted=False)


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
