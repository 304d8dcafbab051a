"""The control API's /metrics page, parsed back with prometheus-client's own parser."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from latlab.exporters.base import ProbeTags
from latlab.exporters.influx import InfluxStats
from latlab.exporters.prometheus import (
    BUCKET_LABELS,
    ControlMetricsPage,
    JobCounts,
    ProbeMetrics,
)
from latlab.jobs.events import Events
from latlab.storage.records import ProbeResult

TAGS = ProbeTags("127.0.0.1", 8008, "/api/latency")
AT = datetime(2025, 3, 1, tzinfo=UTC)
# Bounds are inclusive (le): 0.1 ms is in the first bucket, 0.1001 ms in the second.
LATENCIES_MS = [0.05, 0.1, 0.1001, 3.0, 3.0, 99.9, 100.0, 999.0, 9999.0, 10_000.0, 25_000.0]

Labels = tuple[tuple[str, str], ...]
Samples = dict[str, dict[Labels, float]]


def ok(experiment_id: int, latency_ms: float, status: int = 200) -> ProbeResult:
    return ProbeResult(experiment_id, 0, status, latency_ms, AT, AT)


def failed(experiment_id: int) -> ProbeResult:
    return ProbeResult(experiment_id, 0, 0, -1.0, AT, AT, error="timeout")


@dataclass
class Writer:
    queue_depth: int = 0
    last_commit_age_s: float | None = None


def page(
    probes: ProbeMetrics,
    jobs: JobCounts | None = None,
    writer: Writer | None = None,
    influx: InfluxStats | None = None,
) -> ControlMetricsPage:
    async def job_counts() -> JobCounts:
        return jobs or {}

    return ControlMetricsPage(
        probes, jobs=job_counts, bots_active=lambda: 3, writer=writer or Writer(), influx=influx
    )


async def scrape(metrics: ControlMetricsPage) -> Samples:
    """Every sample of the page: {sample name: {labels: value}}."""
    body, content_type = await metrics.render()
    assert content_type.startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def series(experiment: str, status_class: str, location: str = "", **more: str) -> Labels:
    labels = {"experiment": experiment, "location": location, "status_class": status_class}
    return tuple(sorted({**labels, **more}.items()))


async def test_the_histogram_holds_exactly_what_was_fed() -> None:
    probes = ProbeMetrics(max_experiments=10)
    events = Events([probes])
    events.committed([ok(1, ms) for ms in LATENCIES_MS] + [failed(1), ok(1, 2.0, 404)])
    samples = await scrape(page(probes))
    buckets = samples["latlab_probe_duration_seconds_bucket"]
    for le in BUCKET_LABELS:
        expected = sum(1 for ms in LATENCIES_MS if ms / 1000 <= float(le))
        assert buckets[series("1", "2xx", le=le)] == expected, le
    assert samples["latlab_probe_duration_seconds_count"][series("1", "2xx")] == 11
    total_s = samples["latlab_probe_duration_seconds_sum"][series("1", "2xx")]
    assert abs(total_s - sum(LATENCIES_MS) / 1000) < 1e-9
    assert buckets[series("1", "4xx", le="0.0025")] == 1
    assert series("1", "error", le="+Inf") not in buckets  # a failed probe has no duration
    assert samples["latlab_probe_results_total"] == {
        series("1", "2xx"): 11,
        series("1", "4xx"): 1,
        series("1", "error"): 1,
    }


async def test_experiments_past_the_limit_are_summed_under_other() -> None:
    probes = ProbeMetrics(max_experiments=2)
    for experiment_id in (1, 2, 3, 4):
        probes.probed(experiment_id, TAGS, [ok(experiment_id, 1.0)] * experiment_id)
    results = (await scrape(page(probes)))["latlab_probe_results_total"]
    assert results == {series("1", "2xx"): 1, series("2", "2xx"): 2, series("other", "2xx"): 7}


async def test_deleting_an_experiment_removes_its_series_and_frees_its_slot() -> None:
    probes = ProbeMetrics(max_experiments=2)
    for experiment_id in (1, 2, 3):
        probes.probed(experiment_id, TAGS, [ok(experiment_id, 1.0), failed(experiment_id)])
    probes.deleted("bot", 1)  # a bot of the same id: not this experiment
    probes.deleted("probe", 1)
    probes.deleted("probe", 3)  # summed under other: other keeps it
    probes.probed(5, TAGS, [ok(5, 1.0)])  # the slot 1 left
    probes.probed(2, TAGS, [ok(2, 1.0)])
    samples = await scrape(page(probes))
    assert samples["latlab_probe_results_total"] == {
        series("2", "2xx"): 2,
        series("2", "error"): 1,
        series("other", "2xx"): 1,
        series("other", "error"): 1,
        series("5", "2xx"): 1,
    }
    experiments = {dict(labels)["experiment"] for labels in samples["latlab_probe_results_total"]}
    assert "1" not in experiments
    probes.probed(6, TAGS, [ok(6, 1.0)])  # no slot left: under other
    results = (await scrape(page(probes)))["latlab_probe_results_total"]
    assert results[series("other", "2xx")] == 2


async def test_gauges_come_from_the_snapshot() -> None:
    jobs = {("probe", "running"): 2, ("bot", "paused"): 1}
    influx = InfluxStats(backlog_points=5, sent_points=40, dropped_points=1, errors=2)
    writer = Writer(queue_depth=12, last_commit_age_s=0.25)
    samples = await scrape(page(ProbeMetrics(10), jobs, writer, influx))
    states = samples["latlab_jobs"]
    assert states[(("kind", "probe"), ("state", "running"))] == 2
    assert states[(("kind", "bot"), ("state", "paused"))] == 1
    assert states[(("kind", "bot"), ("state", "running"))] == 0  # every state, 0s included
    assert len(states) == 2 * 6
    assert samples["latlab_bots_active"] == {(): 3}
    assert samples["latlab_writer_queue_depth"] == {(): 12}
    assert samples["latlab_writer_last_commit_age_seconds"] == {(): 0.25}
    assert samples["latlab_influx_backlog_points"] == {(): 5}
    assert samples["latlab_influx_points_sent_total"] == {(): 40}
    assert samples["latlab_influx_points_dropped_total"] == {(): 1}
    assert samples["latlab_influx_write_errors_total"] == {(): 2}


async def test_no_commit_yet_is_no_sample_rather_than_a_made_up_age() -> None:
    samples = await scrape(page(ProbeMetrics(10)))
    assert "latlab_writer_last_commit_age_seconds" not in samples
    assert "latlab_influx_backlog_points" not in samples  # no InfluxDB configured
    assert samples["latlab_writer_queue_depth"] == {(): 0}


async def test_a_series_at_a_location_is_labelled_with_it() -> None:
    probes = ProbeMetrics(max_experiments=10)
    probes.probed(3, ProbeTags("h", 1, "/", "eu-1"), [ok(3, 1.0)])
    probes.probed(3, ProbeTags("h", 1, "/", "us-1"), [ok(3, 2.0), failed(3)])
    samples = await scrape(page(probes))
    assert samples["latlab_probe_results_total"] == {
        series("3", "2xx", "eu-1"): 1,
        series("3", "2xx", "us-1"): 1,
        series("3", "error", "us-1"): 1,
    }
