"""The Grafana dashboard asks only for what LatLab exports: metric, label, field and tag names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from latlab.exporters.base import ProbeTags
from latlab.exporters.influx import InfluxStats
from latlab.exporters.influx_probes import probe_line, series_prefix
from latlab.exporters.prometheus import ControlMetricsPage, JobCounts, ProbeMetrics, registry_of
from latlab.exporters.prometheus import render as render_registry
from latlab.serving.counting import REQUEST_CELLS
from latlab.storage.records import ProbeResult
from latlab.targets.counters import CountsTable
from latlab.targets.metrics import CountsCollector
from latlab.targets.reporting import period_lines

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "latlab.json"
AT = datetime(2025, 3, 1, tzinfo=UTC)
# Labels Prometheus adds itself, or that histogram_quantile reads.
IMPLIED_LABELS = {"job", "instance", "le"}


class Writer:
    queue_depth = 0
    last_commit_age_s: float | None = 1.0


async def exposition() -> dict[str, set[str]]:
    """Every sample name of both /metrics pages (API and targets), with its label names."""
    probes = ProbeMetrics(max_experiments=10)
    failed = ProbeResult(1, 1, 0, -1.0, AT, AT, error="refused")
    probes.probed(1, ProbeTags("h", 80, "/"), [ProbeResult(1, 0, 200, 2.0, AT, AT), failed])

    async def jobs() -> JobCounts:
        return {("probe", "running"): 1}

    control = ControlMetricsPage(
        probes, jobs=jobs, bots_active=lambda: 0, writer=Writer(), influx=InfluxStats()
    )
    pages = [(await control.render())[0]]
    counts = CountsTable.in_memory(rows=1)
    pages.append(render_registry(registry_of(CountsCollector(counts)))[0])
    counts.close()
    names: dict[str, set[str]] = {}
    for page in pages:
        for family in text_string_to_metric_families(page.decode()):
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
    return names


def line_protocol_keys() -> dict[str, set[str]]:
    """Every measurement LatLab writes to InfluxDB, with its tag and field keys."""
    full = ProbeResult(1, 0, 200, 2.0, AT, AT, connect_ms=1.0, ttfb_ms=1.5, dns_ms=0.5)
    lines = [probe_line(series_prefix(1, ProbeTags("h", 80, "/")), full)]
    lines += period_lines(0, [1] * REQUEST_CELLS)
    keys: dict[str, set[str]] = {}
    for line in lines:
        series, fields, _stamp = line.split(" ")
        measurement, *tags = series.split(",")
        found = keys.setdefault(measurement, set())
        found.update(pair.split("=")[0] for pair in [*tags, *fields.split(",")])
    return keys


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def promql(board: dict[str, Any]) -> Iterator[str]:
    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == "prometheus":
                yield target["expr"]
    for variable in board["templating"]["list"]:
        if variable.get("datasource", {}).get("type") == "prometheus":
            yield variable["definition"]


def influxql(board: dict[str, Any]) -> Iterator[str]:
    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == "influxdb":
                yield target["query"]
    for variable in board["templating"]["list"]:
        if variable.get("datasource", {}).get("type") == "influxdb":
            yield variable["definition"]


async def test_every_promql_expression_names_exported_metrics_and_labels() -> None:
    exported = await exposition()
    expressions = list(promql(dashboard()))
    assert len(expressions) >= 10
    named: set[str] = set()
    for expression in expressions:
        metrics = set(re.findall(r"\blatlab_\w+", expression))
        assert metrics, expression
        assert metrics <= exported.keys(), expression
        named |= metrics
        labels = set().union(*(exported[metric] for metric in metrics)) | IMPLIED_LABELS
        for group in re.findall(r"\bby \(([^)]*)\)", expression):
            assert {label.strip() for label in group.split(",")} <= labels, expression
        for label in re.findall(r"[{,]\s*(\w+)\s*[=!]~?", expression):
            assert label in labels, expression
    # And the other way round: each family the API and the targets export has a panel.
    families = {re.sub(r"_(bucket|sum|count|total)$", "", name) for name in exported}
    assert families <= {re.sub(r"_(bucket|sum|count|total)$", "", name) for name in named}


def test_every_influxql_query_names_written_measurements_fields_and_tags() -> None:
    written = line_protocol_keys()
    queries = list(influxql(dashboard()))
    assert len(queries) >= 5
    measurements: set[str] = set()
    for query in queries:
        found = re.search(r'FROM "(\w+)"', query)
        assert found is not None, query
        measurement = found.group(1)
        measurements.add(measurement)
        unaliased = re.sub(r'AS "\w+"', "", query)  # names of result columns, not of keys
        quoted = set(re.findall(r'"(\w+)"', unaliased)) - {measurement}
        assert quoted <= written[measurement], query
    assert measurements == written.keys()  # each has a panel


def test_panels_use_the_datasource_variables_and_distinct_ids() -> None:
    board = dashboard()
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"DS_PROMETHEUS", "DS_INFLUXDB"} <= variables
    ids = [panel["id"] for panel in panels(board["panels"])]
    assert len(ids) == len(set(ids))
    for panel in panels(board["panels"]):
        if panel["type"] != "row":
            uid = panel["datasource"]["uid"]
            assert uid in ("${DS_PROMETHEUS}", "${DS_INFLUXDB}"), panel["title"]
            assert all(target["datasource"]["uid"] == uid for target in panel["targets"])
