"""Probe results as InfluxDB points, in a real influxd: exact, escaped, kept while it is away."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness import wait_for
from influx import InfluxServer, Point, influx_server
from latlab.exporters.base import ProbeTags, StateChange
from latlab.exporters.influx import InfluxClient, InfluxConfig, InfluxExporter
from latlab.exporters.influx_probes import InfluxProbeSink, probe_line, series_prefix
from latlab.jobs.events import Events
from latlab.storage.records import JobRecord, JobState, ProbeResult, SiteResult
from services import free_port

STARTED = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
STARTED_NS = 1_740_830_400_123_456_000
TAGS = ProbeTags("example.org", 8008, "/a b,c=d")


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxServer]:
    with influx_server(tmp_path / "influx") as server:
        yield server


def result(seq: int, experiment_id: int = 7) -> ProbeResult:
    """Every fifth probe failed, every fourth got a 503; odd ones have no connect time."""
    at = STARTED + timedelta(milliseconds=seq)
    if seq % 5 == 4:
        return ProbeResult(experiment_id, seq, 0, -1.0, at, at, error="connect refused")
    status = 503 if seq % 4 == 3 else 200
    connect_ms = None if seq % 2 else seq / 8
    return ProbeResult(
        experiment_id, seq, status, 10.0 + seq / 4, at, at, connect_ms, ttfb_ms=9.5, dns_ms=0.25
    )


def exporter_for(url: str, max_backlog_points: int = 1000) -> InfluxExporter:
    return InfluxExporter(
        InfluxClient(InfluxConfig(url, "math_server")), max_backlog_points=max_backlog_points
    )


def probe_points(influx: InfluxServer) -> list[Point]:
    return influx.points("probe")


async def written(exporter: InfluxExporter, count: int) -> None:
    async def done() -> bool:
        return exporter.stats.sent_points >= count

    await wait_for(done, what=f"{count} points written")


def test_a_result_is_one_line_of_line_protocol() -> None:
    prefix = series_prefix(7, TAGS)
    assert probe_line(prefix, result(1)) == (
        r"probe,experiment=7,host=example.org,path=/a\ b\,c\=d,port=8008,status_class=2xx "
        f"latency_ms=10.25,ttfb_ms=9.5,dns_ms=0.25,status_code=200i,seq=1i {STARTED_NS + 10**6}"
    )
    failed = probe_line(prefix, result(4))
    assert " latency_ms=-1.0,status_code=0i,seq=4i " in failed
    assert ",status_class=error " in failed


def test_tags_not_described_are_left_out_and_naive_times_are_utc() -> None:
    naive = ProbeResult(3, 0, 200, 1.5, datetime(1970, 1, 1, 0, 0, 1), STARTED, float("nan"))
    line = probe_line(series_prefix(3, ProbeTags("", 0, "")), naive)
    assert line == "probe,experiment=3,status_class=2xx latency_ms=1.5,status_code=200i,seq=0i " + (
        str(10**9)
    )


async def test_fifty_results_read_back_as_fifty_points(influx: InfluxServer) -> None:
    exporter = exporter_for(influx.url)
    exporter.start()
    events = Events([InfluxProbeSink(exporter)])
    events.describe(7, TAGS)
    for first in range(0, 50, 10):  # as the writer commits: in batches
        events.committed([result(seq) for seq in range(first, first + 10)])
    await written(exporter, 50)
    await exporter.close()
    points = probe_points(influx)
    assert len(points) == 50
    for point in points:
        expected = result(point["seq"])
        assert point["time"] == STARTED_NS + point["seq"] * 10**6
        assert (point["experiment"], point["host"], point["port"]) == ("7", "example.org", "8008")
        assert point["path"] == "/a b,c=d"
        assert point["status_code"] == expected.status_code
        assert point["latency_ms"] == expected.latency_ms
        assert point["connect_ms"] == expected.connect_ms
        failed = expected.error is not None
        assert point["ttfb_ms"] == (None if failed else 9.5)
        assert point["status_class"] == ("error" if failed else f"{expected.status_code // 100}xx")
    assert sorted(point["seq"] for point in points) == list(range(50))


async def test_two_locations_of_one_experiment_are_two_series_tagged_with_them(
    influx: InfluxServer,
) -> None:
    """Same experiment, same seq, same start: only the location tag keeps the points apart
    (InfluxDB keeps one point per series and time)."""
    exporter = exporter_for(influx.url)
    exporter.start()
    events = Events([InfluxProbeSink(exporter)])
    for site_id, where in ((1, "eu-1"), (2, "us-1")):
        tags = ProbeTags(TAGS.host, TAGS.port, TAGS.path, where)
        events.describe(7, tags, ("probe_site", site_id))
    located = [
        SiteResult(**dataclasses.asdict(result(seq, site_id)), location=where)
        for site_id, where in ((1, "eu-1"), (2, "us-1"))
        for seq in range(3)
    ]
    events.committed(located)
    await written(exporter, 6)
    await exporter.close()
    points = probe_points(influx)
    assert sorted((p["experiment"], p["location"], p["seq"]) for p in points) == [
        ("7", where, seq) for where in ("eu-1", "us-1") for seq in range(3)
    ]


async def test_results_stored_while_influx_is_away_arrive_once_it_is_back(
    influx: InfluxServer,
) -> None:
    exporter = exporter_for(influx.url)
    exporter.start()
    sink = InfluxProbeSink(exporter)
    sink.probed(7, TAGS, [result(seq) for seq in range(20)])
    await written(exporter, 20)
    await asyncio.to_thread(influx.stop)
    for first in range(20, 50, 10):
        sink.probed(7, TAGS, [result(seq) for seq in range(first, first + 10)])

    async def failing() -> bool:
        return exporter.stats.errors >= 1

    await wait_for(failing, what="a failed write")
    assert exporter.stats.backlog_points == 30  # kept, none dropped
    await asyncio.to_thread(influx.start)
    await written(exporter, 50)
    await exporter.close()
    assert sorted(point["seq"] for point in probe_points(influx)) == list(range(50))
    assert exporter.stats.dropped_points == 0


async def test_a_full_backlog_drops_the_oldest_points_and_counts_them(tmp_path: Path) -> None:
    server = InfluxServer(tmp_path)  # not started yet: nothing answers
    exporter = exporter_for(server.url, max_backlog_points=10)
    exporter.start()
    sink = InfluxProbeSink(exporter)
    for first in (0, 4, 8):
        sink.probed(7, TAGS, [result(seq) for seq in range(first, first + 4)])
    assert (exporter.stats.dropped_points, exporter.stats.backlog_points) == (4, 8)
    server.start()
    try:
        await written(exporter, 8)
        await exporter.close()
        assert sorted(point["seq"] for point in probe_points(server)) == list(range(4, 12))
    finally:
        server.stop()


async def test_a_deleted_experiment_is_forgotten_and_tags_described_late_are_used(
    influx: InfluxServer,
) -> None:
    exporter = exporter_for(influx.url)
    sink = InfluxProbeSink(exporter)
    sink.probed(8, ProbeTags("", 0, ""), [result(0, 8)])  # before its runner described it
    sink.probed(8, TAGS, [result(1, 8)])
    sink.deleted("bot", 8)  # another kind's job of the same id
    assert sink.experiments == 1
    sink.deleted("probe", 8)
    assert sink.experiments == 0
    sink.probed(8, ProbeTags("other.example", 80, "/"), [result(2, 8)])
    await exporter.close()
    hosts = {point["seq"]: point["host"] for point in probe_points(influx)}
    assert hosts == {0: None, 1: "example.org", 2: "other.example"}


def test_an_experiment_that_ended_is_forgotten_and_one_paused_is_not(tmp_path: Path) -> None:
    sink = InfluxProbeSink(exporter_for(f"http://127.0.0.1:{free_port()}"))
    for experiment_id in (1, 2, 3):
        sink.probed(experiment_id, TAGS, [result(0, experiment_id)])
    at = datetime(2026, 12, 3, tzinfo=UTC)
    sink.state_changed(StateChange("probe", 1, JobState.PAUSED, None, at))
    sink.state_changed(StateChange("probe", 2, JobState.COMPLETED, None, at))
    sink.state_changed(StateChange("bot", 3, JobState.STOPPED, None, at))  # not experiment 3
    assert sink.experiments == 2


def test_the_seam_forgets_what_an_ended_experiment_measured() -> None:
    events = Events()
    events.describe(4, TAGS)
    at = datetime(2026, 12, 3, tzinfo=UTC)
    events.state_changed(JobRecord(4, "probe", JobState.RUNNING, {}, updated_at=at))
    assert events.described == 1
    events.state_changed(JobRecord(4, "probe", JobState.STOPPED, {}, updated_at=at))
    assert events.described == 0


def test_the_tag_cache_is_bounded_when_no_end_is_heard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: a worker runs series, and hears only their ends, never their
    experiments': the tag strings of every experiment it ever ran were kept."""
    monkeypatch.setattr("latlab.exporters.influx_probes.MAX_CACHED", 3)
    sink = InfluxProbeSink(exporter_for("http://127.0.0.1:9"))
    for experiment_id in range(10):
        sink.probed(experiment_id, TAGS, [result(0, experiment_id)])
    assert sink.experiments == 3
