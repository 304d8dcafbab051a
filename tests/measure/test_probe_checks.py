"""The prober sends what the request builder built, and checks responses when asked to."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_http_probe import OK, targets, tiny_server

from latlab.measure.errors import error_kind
from latlab.measure.http_probe import (
    Exchange,
    HttpProber,
    ProbeTarget,
    ResponseChecks,
    probe_once,
)
from latlab.measure.request import RequestSpec, parse_expect_status
from latlab.measure.response import BodyScan

JSON = (("Content-Type", "application/json"),)


def checked(port: int, path: str = "/api/latency", **checks: Any) -> ProbeTarget:
    return ProbeTarget("127.0.0.1", port, path=path, checks=ResponseChecks(**checks))


def assert_check_failed(exchange: Exchange, status_code: int, text: str, kind: str) -> None:
    """A failed check keeps what was measured; only the error says it failed."""
    assert (exchange.ok, exchange.status_code) == (False, status_code)
    assert exchange.latency_ms > 0
    assert exchange.error is not None
    assert exchange.error.startswith(text), exchange.error
    assert error_kind(exchange.error) == kind


async def test_a_post_sends_its_headers_and_body() -> None:
    seen: list[bytes] = []

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head + await reader.readexactly(7))
        writer.write(OK)

    request = RequestSpec("POST", (*JSON, ("X-Trace", "t1")), b'{"a":1}')
    async with tiny_server(capture) as port:
        exchange = await probe_once(ProbeTarget("127.0.0.1", port, path="/sum", request=request))
    assert (exchange.ok, exchange.status_code) == (True, 200)
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /sum HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json\r\nX-Trace: t1\r\nContent-Length: 7\r\n" in head
    assert body == b'{"a":1}'


async def test_a_json_post_to_the_sum_target_is_summed() -> None:
    request = RequestSpec("POST", JSON, b'{"a": 1, "b": 2}')
    checks = ResponseChecks(parse_expect_status("200"), b"Sum: 3.0")
    async with targets() as port:
        target = ProbeTarget("127.0.0.1", port, path="/sum", request=request, checks=checks)
        exchange = await probe_once(target)
    assert (exchange.ok, exchange.status_code, exchange.error) == (True, 200, None)


async def test_kept_alive_posts_share_one_connection() -> None:
    request = RequestSpec("POST", JSON, b'{"a": 2}')
    async with targets() as port:
        target = ProbeTarget("127.0.0.1", port, path="/sum", keep_alive=True, request=request)
        prober = HttpProber(target)
        exchanges = [await prober.probe() for _ in range(3)]
        await prober.aclose()
    assert [(e.status_code, e.connect_ms is None) for e in exchanges] == [
        (200, False),
        (200, True),
        (200, True),
    ]


async def test_head_ends_at_the_headers_though_they_announce_a_body() -> None:
    connections: list[int] = []

    async def announce(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HEAD / HTTP/1.1")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")

    async with tiny_server(announce) as port:
        head = RequestSpec("HEAD")
        target = ProbeTarget("127.0.0.1", port, "/", timeout_s=2, keep_alive=True, request=head)
        prober = HttpProber(target)
        first, second = await prober.probe(), await prober.probe()
        await prober.aclose()
    assert [(e.ok, e.status_code) for e in (first, second)] == [(True, 200), (True, 200)]
    assert (second.connect_ms, len(connections)) == (None, 1)


async def test_head_of_a_target_route_is_a_measurement() -> None:
    async with targets() as port:
        target = ProbeTarget("127.0.0.1", port, request=RequestSpec("HEAD"), timeout_s=2)
        exchange = await probe_once(target)
    assert (exchange.ok, exchange.status_code) == (True, 200)


def test_a_body_check_on_a_head_is_refused() -> None:
    checks = ResponseChecks(body_contains=b"x")
    with pytest.raises(ValueError, match="HEAD response has no body"):
        ProbeTarget("127.0.0.1", 80, request=RequestSpec("HEAD"), checks=checks)


async def test_without_checks_an_error_status_is_a_measurement() -> None:
    async with targets() as port:
        exchange = await probe_once(checked(port, "/status/503"))
    assert (exchange.ok, exchange.status_code) == (True, 503)


@pytest.mark.parametrize(("path", "passes"), [("/status/201", True), ("/status/503", False)])
async def test_expect_status_passes_listed_codes_only(path: str, passes: bool) -> None:
    async with targets() as port:
        exchange = await probe_once(checked(port, path, status=parse_expect_status("200,201")))
    if passes:
        assert (exchange.ok, exchange.status_code) == (True, 201)
    else:
        assert_check_failed(exchange, 503, "expect_status: got 503, not 200,201", "bad_status")


@pytest.mark.parametrize(("needle", "passes"), [(b'"status":202', True), (b"pong", False)])
async def test_expect_body_contains_searches_the_body(needle: bytes, passes: bool) -> None:
    async with targets() as port:
        exchange = await probe_once(checked(port, "/status/202", body_contains=needle))
    if passes:
        assert (exchange.ok, exchange.status_code) == (True, 202)
    else:
        assert_check_failed(exchange, 202, "expect_body_contains: 'pong' not in", "assertion")


async def test_a_needle_split_across_chunks_is_found() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nxxne\r\n1\r\ne\r\n3\r\ndle\r\n0\r\n\r\n"
    )

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)

    async with tiny_server(chunked) as port:
        exchange = await probe_once(checked(port, body_contains=b"needle"))
    assert (exchange.ok, exchange.status_code) == (True, 200)


async def test_a_large_body_without_the_needle_fails_the_check() -> None:
    async with targets() as port:
        exchange = await probe_once(checked(port, "/bytes/3000000", body_contains=b"\x00\x01"))
    assert_check_failed(exchange, 200, "expect_body_contains: '\\x00\\x01' not in", "assertion")


BODY = b"abcabdabcxyzneedleneedxyz"


@pytest.mark.parametrize("needle", [b"a", b"abd", b"needle", b"zne", b"xyz", b"dleneed", b"q"])
def test_a_body_scan_finds_a_needle_wherever_chunks_split(needle: bytes) -> None:
    for size in range(1, len(BODY) + 1):
        scan = BodyScan(needle)
        for start in range(0, len(BODY), size):
            scan.feed(BODY[start : start + size])
            assert len(scan._carry) <= len(needle) - 1  # only a straddling start is kept
        assert scan.found == (needle in BODY), size


@pytest.mark.parametrize(("bound_ms", "passes"), [(10_000.0, True), (5.0, False)])
async def test_expect_max_latency_ms_fails_slower_probes(bound_ms: float, passes: bool) -> None:
    async with targets() as port:
        exchange = await probe_once(checked(port, "/delay?ms=20", max_latency_ms=bound_ms))
    if passes:
        assert (exchange.ok, exchange.status_code) == (True, 200)
    else:
        assert_check_failed(exchange, 200, "expect_max_latency_ms: took ", "assertion")
        assert exchange.latency_ms >= 20
        assert (exchange.error or "").endswith(", over 5 ms")


async def test_the_status_check_is_reported_first_when_several_fail() -> None:
    checks = {
        "status": parse_expect_status("2xx"),
        "body_contains": b"nope",
        "max_latency_ms": 1e-6,
    }
    async with targets() as port:
        exchange = await probe_once(checked(port, "/status/404", **checks))
    assert_check_failed(exchange, 404, "expect_status: got 404, not 2xx", "bad_status")


async def test_a_failed_transport_is_not_a_failed_check(unused_port: int) -> None:
    exchange = await probe_once(checked(unused_port, status=parse_expect_status("2xx")))
    assert (exchange.status_code, exchange.latency_ms) == (0, -1.0)
    assert error_kind(exchange.error or "") == "refused"
