"""The pipeline's services as one InfluxDB point each a second, in a real influxd."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from harness import wait_for
from influx import InfluxServer, Point, influx_server
from latlab.exporters.influx_pipeline import (
    LatencyTally,
    ServiceTally,
    bucket_quantile,
    pipeline_line,
)
from latlab.exporters.prometheus import BUCKET_BOUNDS_MS
from latlab.pipeline.metrics import LatencyBuckets
from latlab.pipeline.services import ALL_ROLES, Pipeline, Role, open_pipeline
from pipeline_files import pipeline_settings, wait_for_results
from services import REDIS_URL

SERVICES = {"receiver", "handler", "writer"}


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxServer]:
    with influx_server(tmp_path / "influx") as server:
        yield server


@pytest.fixture
async def pipeline(tmp_path: Path, influx: InfluxServer) -> AsyncIterator[Pipeline]:
    settings = pipeline_settings(tmp_path, influx_url=influx.url, influx_database="pipe")
    async with open_pipeline(settings, ALL_ROLES) as opened:
        yield opened


async def send_run(pipeline: Pipeline, count: int) -> None:
    base = f"http://127.0.0.1:{pipeline.port(Role.CLIENT)}"
    query = f"connection_count=5&connection_value={count}&delay_range=0"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        answer = await http.get(f"/?{query}")
    assert answer.json()["acked"] == count


def total(points: list[Point], service: str, field: str) -> int:
    return sum(point[field] or 0 for point in points if point["service"] == service)


def test_a_point_has_escaped_tags_integer_counts_and_float_latencies() -> None:
    fields = {"received": 3, "refused": 0, "end_to_end_p50_ms": 2.0}
    assert pipeline_line("receiver", "my host,1", fields, 1_700_000_000_000_000_000) == (
        "pipeline,host=my\\ host\\,1,service=receiver "
        "received=3i,refused=0i,end_to_end_p50_ms=2.0 1700000000000000000"
    )
    assert pipeline_line("writer", "", {"waiting": 0}, 5) == "pipeline,service=writer waiting=0i 5"
    assert pipeline_line("handler", "lab", {"in_flight": 1}, 5, instance="5002") == (
        "pipeline,host=lab,instance=5002,service=handler in_flight=1i 5"
    )


def test_a_quantile_is_interpolated_within_its_bucket() -> None:
    counts = [0] * (len(BUCKET_BOUNDS_MS) + 1)
    counts[BUCKET_BOUNDS_MS.index(1.0)] = 4  # four latencies in (0.5, 1.0] ms
    assert bucket_quantile(counts, 0.5) == 0.75
    assert bucket_quantile(counts, 1.0) == 1.0
    counts[-1] = 4  # and four over the last bound: shown as that bound
    assert bucket_quantile(counts, 0.99) == BUCKET_BOUNDS_MS[-1]


def test_counters_are_reported_as_differences_and_gauges_as_read() -> None:
    figures = {"done": 7, "busy": 2}
    latency = LatencyBuckets()
    tally = ServiceTally(
        "handler",
        {"done": lambda: figures["done"]},
        {"busy": lambda: figures["busy"]},
        LatencyTally("end_to_end", latency),
    )
    figures["done"] = 10
    latency.add(0.75)
    assert tally.fields() == {
        "done": 3,
        "busy": 2,
        "end_to_end_p50_ms": 0.75,
        "end_to_end_p99_ms": 0.995,
    }
    figures["busy"] = 0
    assert tally.fields() == {"done": 0, "busy": 0}  # no latency counted: no percentiles


async def test_a_run_of_50_shows_in_the_points_of_each_service(
    pipeline: Pipeline, influx: InfluxServer, tmp_path: Path
) -> None:
    await send_run(pipeline, 50)
    await wait_for_results(tmp_path / "out", 50)

    async def counted() -> bool:
        points = influx.points("pipeline", "pipe")
        # The handler counts a request once its outcome is recorded: the writer may be first.
        done = ("writer", "results_written"), ("handler", "processed")
        return bool(points) and all(total(points, *figure) == 50 for figure in done)

    await wait_for(counted, timeout_s=10, what="the run's points")
    points = influx.points("pipeline", "pipe")
    assert {point["service"] for point in points} == SERVICES
    assert {point["host"] for point in points} == {socket.gethostname()}
    ports = {role.value: str(pipeline.port(role)) for role in ALL_ROLES}
    assert {(point["service"], point["instance"]) for point in points} == {
        (service, ports[service]) for service in SERVICES
    }
    assert total(points, "receiver", "received") == 50
    assert total(points, "receiver", "refused") == 0
    assert total(points, "receiver", "enqueue_failed") == 0
    assert total(points, "handler", "processed") == 50
    assert total(points, "writer", "receipts_written") == 50
    written = [p for p in points if p["service"] == "writer" and p["results_written"]]
    assert all(p["end_to_end_p99_ms"] >= p["end_to_end_p50_ms"] > 0 for p in written)


async def test_the_last_partial_second_is_written_at_shutdown(
    tmp_path: Path, influx: InfluxServer
) -> None:
    settings = pipeline_settings(tmp_path, influx_url=influx.url, influx_database="pipe")
    async with open_pipeline(settings, ALL_ROLES) as pipeline:
        await send_run(pipeline, 30)
        await wait_for_results(tmp_path / "out", 30)
    points = influx.points("pipeline", "pipe")  # at once: closing flushed them
    assert total(points, "receiver", "received") == 30
    assert total(points, "writer", "results_written") == 30


async def test_the_pipeline_runs_and_stops_promptly_while_influxdb_is_down(
    tmp_path: Path, unused_port: int
) -> None:
    settings = pipeline_settings(tmp_path, influx_url=f"http://127.0.0.1:{unused_port}")
    began_s = time.monotonic()
    async with open_pipeline(settings, ALL_ROLES) as pipeline:
        await send_run(pipeline, 20)
        await wait_for_results(tmp_path / "out", 20)
    assert time.monotonic() - began_s < 5  # the last try to write is bounded, and fails fast


async def test_two_handlers_on_one_host_are_two_series_not_one_overwritten(
    tmp_path: Path, influx: InfluxServer
) -> None:
    settings = pipeline_settings(tmp_path, influx_url=influx.url, influx_database="pipe")
    settings = settings.model_copy(
        update={"redis_url": REDIS_URL, "redis_prefix": f"latlab-test-{uuid.uuid4().hex}"}
    )
    roles = (Role.HANDLER,)
    async with open_pipeline(settings, roles) as first, open_pipeline(settings, roles) as second:
        ports = {str(first.port(Role.HANDLER)), str(second.port(Role.HANDLER))}

        async def both_reported() -> bool:
            points = influx.points("pipeline", "pipe")
            return {point["instance"] for point in points} == ports

        await wait_for(both_reported, timeout_s=10, what="a point of each handler")
