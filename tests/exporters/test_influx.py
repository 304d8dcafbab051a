"""The InfluxDB exporter against a real influxd: database creation, auth, backlog, retries."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from harness import wait_for
from influx import InfluxServer, influx_server
from latlab.exporters.influx import (
    InfluxClient,
    InfluxConfig,
    InfluxError,
    InfluxExporter,
    InfluxStats,
    escape_tag,
)
from latlab.settings import Settings
from services import free_port


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxServer]:
    with influx_server(tmp_path / "influx") as server:
        yield server


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[InfluxServer]:
    """An influxd with auth on: an admin, and a writer that may not create databases."""
    with influx_server(tmp_path / "secured", auth=True) as server:
        admin = {"u": "admin", "p": "admin-pw"}
        statements = [
            "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES",
            "CREATE DATABASE locked",
            "CREATE USER writer WITH PASSWORD 'writer-pw'",
            'GRANT WRITE ON "locked" TO writer',
        ]
        for index, statement in enumerate(statements):
            # The first user can only be created without credentials: there are none yet.
            credentials = admin if index else {}
            response = httpx.post(f"{server.url}/query", params=credentials, data={"q": statement})
            response.raise_for_status()
        yield server


def line(value: int, stamp_ns: int) -> str:
    return f"requests,request=GETs_per_minute requests_number={value}i {stamp_ns}"


def lines(*values: int) -> str:
    return "\n".join(line(value, value) for value in values)


def numbers(influx: InfluxServer, database: str = "math_server", **auth: str) -> list[int]:
    found = influx.query("SELECT requests_number FROM requests", database, **auth)
    return [row[1] for row in found[0]["values"]] if found else []


async def sent(exporter: InfluxExporter, count: int) -> None:
    async def done() -> bool:
        return exporter.stats.sent_points >= count

    await wait_for(done, what=f"{count} points written")


def test_tag_values_are_escaped() -> None:
    assert escape_tag("a b,c=d\\e") == "a\\ b\\,c\\=d\\\\e"


def test_config_from_settings() -> None:
    assert InfluxConfig.from_settings(Settings()) is None
    config = InfluxConfig.from_settings(
        Settings(influx_url="http://h:8086/", influx_token=SecretStr("t0k"))
    )
    assert config is not None
    assert config.url == "http://h:8086"
    assert config.headers()["Authorization"] == "Token t0k"
    with pytest.raises(ValueError, match="http"):
        InfluxConfig("file:///etc/passwd", "db")


def test_user_and_password_go_in_a_basic_auth_header() -> None:
    config = InfluxConfig("http://h", "db", username="u", password="p")
    assert config.headers()["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


async def test_creates_the_database_and_writes_batches_in_one_request(
    influx: InfluxServer,
) -> None:
    exporter = InfluxExporter(
        InfluxClient(InfluxConfig(influx.url, "math_server")), max_backlog_points=9
    )
    for value in (1, 2, 3):
        exporter.submit(line(value, value), 1)
    exporter.start()
    await sent(exporter, 3)
    await exporter.close()
    assert numbers(influx) == [1, 2, 3]


async def test_a_full_backlog_keeps_the_newest(influx: InfluxServer) -> None:
    seen: list[InfluxStats] = []
    exporter = InfluxExporter(
        InfluxClient(InfluxConfig(influx.url, "math_server")),
        max_backlog_points=2,
        observer=lambda stats: seen.append(InfluxStats(**vars(stats))),
    )
    for value in (1, 2, 3, 4):
        exporter.submit(line(value, value), 1)
    assert (exporter.stats.dropped_points, exporter.stats.backlog_points) == (2, 2)
    await exporter.close()  # what is left is written on the way out
    assert numbers(influx) == [3, 4]
    assert (seen[-1].backlog_points, seen[-1].sent_points) == (0, 2)


async def test_the_backlog_is_bounded_in_points_whatever_the_batches(
    influx: InfluxServer,
) -> None:
    exporter = InfluxExporter(
        InfluxClient(InfluxConfig(influx.url, "math_server")), max_backlog_points=5
    )
    exporter.submit(lines(1, 2, 3), 3)
    exporter.submit(lines(4, 5), 2)
    exporter.submit(lines(6, 7), 2)
    assert (exporter.stats.dropped_points, exporter.stats.backlog_points) == (3, 4)
    exporter.submit(lines(*range(8, 15)), 7)  # larger than the whole backlog: its newest 5
    assert (exporter.stats.dropped_points, exporter.stats.backlog_points) == (3 + 4 + 2, 5)
    await exporter.close()
    assert numbers(influx) == [10, 11, 12, 13, 14]
    assert exporter.stats.sent_points == 5


class RecordingClient(InfluxClient):
    """The real client, which also keeps the number of points of every write it sends."""

    def __init__(self, config: InfluxConfig) -> None:
        super().__init__(config)
        self.writes: list[int] = []

    def write(self, lines: str) -> None:
        self.writes.append(lines.count("\n") + 1)
        super().write(lines)


async def test_one_request_carries_at_most_the_points_per_write(influx: InfluxServer) -> None:
    client = RecordingClient(InfluxConfig(influx.url, "math_server"))
    exporter = InfluxExporter(client, max_backlog_points=100, max_points_per_write=4)
    exporter.submit(lines(1, 2), 2)
    exporter.submit(lines(3, 4, 5), 3)  # would make 5: the next request
    exporter.submit(lines(*range(6, 16)), 10)  # larger than a request: in pieces
    await exporter.close()
    assert client.writes == [2, 3, 4, 4, 2]
    assert numbers(influx) == list(range(1, 16))


async def test_points_influx_refuses_are_dropped_not_retried_forever(
    influx: InfluxServer,
) -> None:
    exporter = InfluxExporter(
        InfluxClient(InfluxConfig(influx.url, "math_server")),
        max_backlog_points=9,
        max_points_per_write=1,
    )
    exporter.submit("requests,request=GETs_per_minute requests_number=oops 1", 1)
    exporter.submit(line(2, 2), 1)
    exporter.start()
    await sent(exporter, 1)
    await exporter.close()
    assert numbers(influx) == [2]
    assert (exporter.stats.dropped_points, exporter.stats.errors) == (1, 1)


async def test_writes_are_retried_until_influx_answers(tmp_path: Path) -> None:
    server = InfluxServer(tmp_path)
    exporter = InfluxExporter(
        InfluxClient(InfluxConfig(server.url, "math_server")), max_backlog_points=9
    )
    exporter.submit(line(5, 5), 1)
    exporter.start()

    async def failed() -> bool:
        return exporter.stats.errors >= 2

    await wait_for(failed, what="failed attempts")
    server.start()
    try:
        await sent(exporter, 1)
        await exporter.close()
        assert numbers(server) == [5]
    finally:
        server.stop()


async def test_a_database_dropped_meanwhile_is_created_again(influx: InfluxServer) -> None:
    exporter = InfluxExporter(
        InfluxClient(InfluxConfig(influx.url, "math_server")), max_backlog_points=9
    )
    exporter.start()
    exporter.submit(line(1, 1), 1)
    await sent(exporter, 1)
    influx.query("DROP DATABASE math_server")
    exporter.submit(line(2, 2), 1)
    await sent(exporter, 2)
    await exporter.close()
    assert numbers(influx) == [2]


async def test_a_user_that_may_not_create_databases_still_writes(secured: InfluxServer) -> None:
    config = InfluxConfig(secured.url, "locked", username="writer", password="writer-pw")
    exporter = InfluxExporter(InfluxClient(config), max_backlog_points=9)
    exporter.submit(line(7, 7), 1)
    exporter.start()
    await sent(exporter, 1)
    await exporter.close()
    assert numbers(secured, "locked", u="admin", p="admin-pw") == [7]


async def test_a_wrong_password_fails_and_is_kept_for_later(
    secured: InfluxServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = InfluxConfig(secured.url, "locked", username="writer", password="wrong")
    exporter = InfluxExporter(InfluxClient(config), max_backlog_points=9)
    exporter.submit(line(7, 7), 1)
    exporter.start()

    async def failed() -> bool:
        return exporter.stats.errors >= 1

    await wait_for(failed, what="a refused write")
    await exporter.close(flush_timeout_s=1)
    assert exporter.stats.backlog_points == 1
    assert "1 points not written at shutdown" in caplog.text


def test_an_unreachable_server_is_an_influx_error() -> None:
    client = InfluxClient(InfluxConfig(f"http://127.0.0.1:{free_port()}", "db", timeout_s=1))
    with pytest.raises(InfluxError, match="unreachable"):
        client.write(line(1, 1))


async def test_a_server_that_answers_no_http_fails_the_attempt_and_keeps_the_points() -> None:
    """Found in review: http.client errors are no OSError; one ended the writer for good."""

    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"\x15\x03\x01\x00\x02\x02\x50\r\n\r\n")  # e.g. a TLS port spoken to in http
        writer.close()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    exporter = InfluxExporter(
        InfluxClient(InfluxConfig(f"http://127.0.0.1:{port}", "db", timeout_s=2)),
        max_backlog_points=9,
        retry_max_s=0.2,
    )
    exporter.submit(line(1, 1), 1)
    exporter.start()
    try:

        async def failed_twice() -> bool:
            return exporter.stats.errors >= 2  # retried: the writer is still alive

        await wait_for(failed_twice, what="two failed attempts")
        assert exporter.stats.backlog_points == 1
    finally:
        await exporter.close(flush_timeout_s=0.5)  # gives up, logs, raises nothing
        server.close()
        await server.wait_closed()
