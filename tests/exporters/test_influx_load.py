"""Load runs' seconds as InfluxDB points, in a real influxd."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness import wait_for
from influx import InfluxServer, influx_server
from latlab.exporters.base import LoadSecond, LoadTags
from latlab.exporters.influx import InfluxClient, InfluxConfig, InfluxExporter
from latlab.exporters.influx_load import InfluxLoadSink, load_line
from latlab.jobs.events import Events

BEGAN = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TAGS = LoadTags("127.0.0.1", 8008, "/sum a,b", "POST")


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxServer]:
    with influx_server(tmp_path / "influx") as server:
        yield server


def second(number: int, requests: int = 1000) -> LoadSecond:
    at = BEGAN + timedelta(seconds=number)
    if requests == 0:  # a second without an answer has no percentiles
        return LoadSecond(3, number, at, 0, 0, 0.0, None, None, None, None)
    return LoadSecond(3, number, at, requests, 2, float(requests), 0.5, 0.9, 1.5, 7.25)


def test_a_second_is_one_line_with_escaped_tags_and_no_empty_percentiles() -> None:
    assert load_line(TAGS, second(1)) == (
        "load,host=127.0.0.1,method=POST,path=/sum\\ a\\,b,port=8008,run=3 "
        "requests=1000i,errors=2i,rps=1000.0,p50_ms=0.5,p90_ms=0.9,p99_ms=1.5,max_ms=7.25 "
        "1740830401000000000"
    )
    fields = load_line(TAGS, second(2, requests=0)).rsplit(" ", 2)[1]
    assert fields == "requests=0i,errors=0i,rps=0.0"


async def test_seconds_told_to_the_seam_read_back_as_points(influx: InfluxServer) -> None:
    client = InfluxClient(InfluxConfig(influx.url, "math_server"))
    exporter = InfluxExporter(client, max_backlog_points=100)
    exporter.start()
    events = Events([InfluxLoadSink(exporter)])
    for number in range(3):
        events.load_second(TAGS, second(number, requests=number * 10))

    async def done() -> bool:
        return exporter.stats.sent_points >= 3

    await wait_for(done, what="3 points written")
    await exporter.close()
    points = influx.points("load")
    assert [point["requests"] for point in points] == [0, 10, 20]
    assert points[1]["p99_ms"] == 1.5
    assert points[0]["p99_ms"] is None
    assert (points[2]["run"], points[2]["method"], points[2]["path"]) == ("3", "POST", "/sum a,b")
