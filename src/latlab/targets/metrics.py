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

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from latlab.exporters.influx import InfluxStats
from latlab.exporters.prometheus import influx_metrics, registry_of, render
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
        yield from influx_metrics(
            InfluxStats(
                backlog_points=totals[Cell.INFLUX_BACKLOG_POINTS],
                sent_points=totals[Cell.INFLUX_SENT_POINTS],
                dropped_points=totals[Cell.INFLUX_DROPPED_POINTS],
                errors=totals[Cell.INFLUX_ERRORS],
            )
        )


class MetricsPage:
    def __init__(self, counts: CountsTable, publish: Callable[[], None]) -> None:
        # A registry of our own: nothing is global, and nothing else leaks into the page.
        self._registry = registry_of(CountsCollector(counts))
        self._publish = publish

    def handle(self, _request: Request) -> Response:
        self._publish()  # this process's counts up to this very request
        body, content_type = render(self._registry)
        return encode_response(HTTPStatus.OK, content_type, body, counted=False)
