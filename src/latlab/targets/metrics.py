"""``/metrics``: the counts table in the Prometheus text format.

prometheus-client's own counters take a lock per increment and, with several processes,
need its multiprocess mode (a file per process and metric, merged at scrape time). The
targets already keep every count in a table shared by all workers, so a collector reads
that table instead: any worker answers a scrape with the totals of all of them, and the
hot path pays nothing for it. Scrapes are not counted as requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from latlab.serving.counting import METHODS, STATUS_CLASSES, request_cell
from latlab.serving.wire import Request, Response, encode_response
from latlab.targets.counters import Cell, CountsTable

_SIMPLE = (
    (Cell.TEST_TICKETS, CounterMetricFamily, "latlab_target_test_tickets", "GET /test tickets"),
    (Cell.TEST_QUEUED, GaugeMetricFamily, "latlab_target_test_queued", "GET /test in line"),
    (
        Cell.TEST_ABANDONED,
        CounterMetricFamily,
        "latlab_target_test_abandoned",
        "GET /test whose client left before its turn",
    ),
    (
        Cell.INFLUX_BACKLOG,
        GaugeMetricFamily,
        "latlab_influx_backlog_periods",
        "Request-count periods not yet written to InfluxDB",
    ),
    (Cell.INFLUX_SENT, CounterMetricFamily, "latlab_influx_periods_sent", "Periods written"),
    (
        Cell.INFLUX_DROPPED,
        CounterMetricFamily,
        "latlab_influx_periods_dropped",
        "Periods dropped from a full backlog",
    ),
    (
        Cell.INFLUX_ERRORS,
        CounterMetricFamily,
        "latlab_influx_write_errors",
        "Failed InfluxDB write attempts",
    ),
)


class CountsCollector(Collector):
    def __init__(self, counts: CountsTable) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        totals = self._counts.totals()
        requests = CounterMetricFamily(
            "latlab_target_requests",
            "Requests answered by the targets",
            labels=["method", "status_class"],
        )
        for method_index, method in enumerate(METHODS):
            for status_index, status_class in enumerate(STATUS_CLASSES):
                cell = request_cell(method_index, (status_index + 1) * 100)
                requests.add_metric([method, status_class], totals[cell])
        yield requests
        for cell, family, name, documentation in _SIMPLE:
            yield family(name, documentation, value=totals[cell])


class MetricsPage:
    def __init__(self, counts: CountsTable, publish: Callable[[], None]) -> None:
        # A registry of our own: nothing is global, and nothing else leaks into the page.
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(CountsCollector(counts))
        self._publish = publish

    def handle(self, _request: Request) -> Response:
        self._publish()  # this process's counts up to this very request
        body = generate_latest(self._registry)
        return encode_response(HTTPStatus.OK, CONTENT_TYPE_LATEST, body, counted=False)
