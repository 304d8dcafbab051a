"""Each pipeline service's ``/metrics``: its counts and latencies in the Prometheus text
format, parsed by prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from latlab.pipeline.services import ALL_ROLES, Pipeline, Role, open_pipeline
from pipeline_files import pipeline_settings, wait_for_results


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with open_pipeline(pipeline_settings(tmp_path), ALL_ROLES) as opened:
        yield opened


async def scrape(pipeline: Pipeline, role: Role) -> dict[str, float]:
    """Every sample of the page, by name (histogram buckets by name and bound)."""
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(f"http://127.0.0.1:{pipeline.port(role)}/metrics")
    assert page.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            bound = sample.labels.get("le")
            samples[sample.name if bound is None else f"{sample.name}{{le={bound}}}"] = sample.value
    return samples


async def test_each_service_counts_a_run_of_40_requests(pipeline: Pipeline, tmp_path: Path) -> None:
    query = "/?connection_count=4&connection_value=40&delay_range=20&delay_unit=ms"
    async with httpx.AsyncClient(timeout=30) as http:
        await http.get(f"http://127.0.0.1:{pipeline.port(Role.CLIENT)}{query}")
    await wait_for_results(tmp_path / "out", 40)
    receiver = await scrape(pipeline, Role.RECEIVER)
    assert receiver["latlab_pipeline_received_total"] == 40
    assert receiver["latlab_pipeline_enqueue_seconds_count"] == 40
    assert receiver["latlab_pipeline_enqueue_seconds_bucket{le=+Inf}"] == 40
    handler = await scrape(pipeline, Role.HANDLER)
    assert handler["latlab_pipeline_processed_total"] == 40
    assert handler["latlab_pipeline_in_flight"] == 0
    writer = await scrape(pipeline, Role.WRITER)
    assert writer["latlab_pipeline_results_written_total"] == 40
    assert writer["latlab_pipeline_end_to_end_seconds_count"] == 40
    assert writer["latlab_pipeline_end_to_end_seconds_sum"] > 0
