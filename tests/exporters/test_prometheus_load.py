"""Load runs on the control API's /metrics page: totals per run and the last second's figures."""

from __future__ import annotations

from datetime import UTC, datetime

from test_prometheus import Writer, scrape

from latlab.exporters.base import LoadSecond, LoadTags
from latlab.exporters.prometheus import ControlMetricsPage, LoadMetrics, ProbeMetrics
from latlab.jobs.events import Events

TAGS = LoadTags("127.0.0.1", 8008, "/sum")
AT = datetime(2025, 3, 1, tzinfo=UTC)


def second(run_id: int, requests: int, p99_ms: float | None = 2.0) -> LoadSecond:
    return LoadSecond(run_id, 0, AT, requests, 1, float(requests), 1.0, 1.5, p99_ms, 9.0)


def page(load: LoadMetrics) -> ControlMetricsPage:
    async def no_jobs() -> dict[tuple[str, str], int]:
        return {}

    return ControlMetricsPage(
        ProbeMetrics(10), jobs=no_jobs, bots_active=lambda: 0, writer=Writer(), load=load
    )


async def test_requests_add_up_and_the_last_second_sets_rate_and_quantiles() -> None:
    load = LoadMetrics()
    events = Events([load])
    events.load_second(TAGS, second(4, 100))
    events.load_second(TAGS, second(4, 250, p99_ms=None))
    samples = await scrape(page(load))
    run = (("run", "4"),)
    assert samples["latlab_load_requests_total"][run] == 350
    assert samples["latlab_load_errors_total"][run] == 2
    assert samples["latlab_load_rate_rps"][run] == 250
    quantiles = samples["latlab_load_latency_seconds"]
    assert quantiles[(("quantile", "0.5"), ("run", "4"))] == 0.001
    assert (("quantile", "0.99"), ("run", "4")) not in quantiles  # no answer: no quantile


async def test_only_the_newest_runs_are_kept_and_a_deleted_run_goes() -> None:
    load = LoadMetrics(max_runs=2)
    events = Events([load])
    for run_id in (1, 2, 3):
        events.load_second(TAGS, second(run_id, 10))
    events.deleted("load", 3)
    events.deleted("probe", 2)  # another kind's id 2 is not this run
    samples = await scrape(page(load))
    assert set(samples["latlab_load_requests_total"]) == {(("run", "2"),)}
