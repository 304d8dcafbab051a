from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import pytest
import trustme
import uvloop

from harness import CountingTarget, start_targets
from latlab import __version__
from latlab.measure.connections import SocketConnection, TlsConnection
from latlab.measure.errors import error_kind
from latlab.measure.http_probe import Exchange, HttpProber, ProbeTarget, probe_once
from latlab.measure.policy import TargetPolicy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


@asynccontextmanager
async def tiny_server(
    handle: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """A scripted server on a free port; its handler tasks are cancelled on exit."""
    tasks: set[asyncio.Task[object]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, host, 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@asynccontextmanager
async def targets(host: str = "127.0.0.1") -> AsyncIterator[int]:
    server = await start_targets(host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def answer_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)


def reply_once(data: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(data)
        await writer.drain()

    return handle


def assert_failed(exchange: Exchange, error_start: str) -> None:
    assert (exchange.ok, exchange.status_code, exchange.latency_ms) == (False, 0, -1.0)
    assert exchange.error is not None
    assert exchange.error.startswith(error_start), exchange.error


async def test_probe_against_targets_records_consistent_phases() -> None:
    async with targets() as port:
        exchange = await probe_once(ProbeTarget("127.0.0.1", port))
    assert exchange.ok
    assert exchange.status_code == 200
    assert exchange.dns_ms is None
    assert exchange.connect_ms is not None
    assert exchange.ttfb_ms is not None
    assert 0 < exchange.connect_ms + exchange.ttfb_ms <= exchange.latency_ms


async def test_request_bytes_over_ipv6() -> None:
    seen: list[bytes] = []

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(OK)

    async with tiny_server(capture, host="::1") as port:
        exchange = await probe_once(ProbeTarget("::1", port, path="/a?b=1"))
    assert exchange.ok
    assert seen == [
        f"GET /a?b=1 HTTP/1.1\r\nHost: [::1]:{port}\r\nUser-Agent: latlab/{__version__}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n".encode()
    ]


async def test_ipv6_targets_server() -> None:
    async with targets("::1") as port:
        exchange = await probe_once(ProbeTarget("::1", port))
    assert (exchange.ok, exchange.status_code) == (True, 200)


async def test_hostname_records_dns_time() -> None:
    async with targets() as port:
        exchange = await probe_once(ProbeTarget("localhost", port))
    assert exchange.ok
    assert exchange.dns_ms is not None
    assert exchange.dns_ms >= 0


async def test_keep_alive_reuses_one_connection() -> None:
    connections: list[int] = []

    async def counting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await answer_forever(reader, writer)

    async with tiny_server(counting) as port:
        prober = HttpProber(ProbeTarget("127.0.0.1", port, keep_alive=True))
        exchanges = [await prober.probe() for _ in range(3)]
        await prober.aclose()
    assert all(e.ok for e in exchanges)
    assert exchanges[0].connect_ms is not None
    assert [e.connect_ms for e in exchanges[1:]] == [None, None]
    assert len(connections) == 1


async def test_keep_alive_reconnects_when_request_meets_a_dropped_connection() -> None:
    connections: list[int] = []

    async def drop_second_request(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await reader.readuntil(b"\r\n\r\n")
        if len(connections) > 1:
            writer.write(OK)
        # Closing without an answer is what a server timing out an idle connection does.

    async with tiny_server(drop_second_request) as port:
        prober = HttpProber(ProbeTarget("127.0.0.1", port, keep_alive=True))
        first, second = await prober.probe(), await prober.probe()
        await prober.aclose()
    assert first.ok
    assert second.ok
    assert second.connect_ms is not None
    assert len(connections) == 2


async def test_keep_alive_reconnects_after_server_closed_idle_connection() -> None:
    closed = asyncio.Event()

    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply_once(OK)(reader, writer)
        writer.close()
        await writer.wait_closed()
        closed.set()

    async with tiny_server(answer_then_close) as port:
        prober = HttpProber(ProbeTarget("127.0.0.1", port, keep_alive=True))
        first = await prober.probe()
        await closed.wait()
        second = await prober.probe()
        await prober.aclose()
    assert (first.ok, second.ok) == (True, True)
    assert second.connect_ms is not None


async def test_connection_refused_is_a_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exchange = await probe_once(ProbeTarget("127.0.0.1", port))
    assert_failed(exchange, "connection refused")
    assert exchange.connect_ms is None


async def test_silent_server_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with tiny_server(silent) as port:
        exchange = await probe_once(ProbeTarget("127.0.0.1", port, timeout_s=0.2))
    assert_failed(exchange, "timeout after 0.2 s")
    assert exchange.connect_ms is not None


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"garbage\r\n\r\n", "invalid HTTP response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "connection closed before"),
        (b"", "server closed connection without response"),
    ],
)
async def test_broken_responses_are_failures(reply: bytes, error: str) -> None:
    async with tiny_server(reply_once(reply)) as port:
        exchange = await probe_once(ProbeTarget("127.0.0.1", port))
    assert_failed(exchange, error)


@pytest.mark.parametrize(
    ("reply", "status_code"),
    [
        (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", 500),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, 200),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 200),
    ],
)
async def test_any_complete_response_is_a_measurement(reply: bytes, status_code: int) -> None:
    async def reply_and_wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply_once(reply)(reader, writer)
        await reader.read()  # completion must come from framing, not from a close

    async with tiny_server(reply_and_wait) as port:
        exchange = await probe_once(ProbeTarget("127.0.0.1", port))
    assert (exchange.ok, exchange.status_code) == (True, status_code)
    assert exchange.latency_ms > 0


async def test_body_ended_by_close_is_a_measurement() -> None:
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 100_000
    async with tiny_server(reply_once(reply)) as port:
        exchange = await probe_once(ProbeTarget("127.0.0.1", port))
    assert (exchange.ok, exchange.status_code) == (True, 200)


@pytest.fixture(scope="module")
def tls_server_context() -> ssl.SSLContext:
    certificate = trustme.CA().issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    return context


async def test_https_without_verification_succeeds(tls_server_context: ssl.SSLContext) -> None:
    async with tiny_server(answer_forever, tls=tls_server_context) as port:
        target = ProbeTarget("127.0.0.1", port, scheme="https", verify_tls=False)
        exchange = await probe_once(target)
    assert (exchange.ok, exchange.status_code) == (True, 200)
    assert exchange.connect_ms is not None


async def test_https_keep_alive_reuses_the_tls_connection(
    tls_server_context: ssl.SSLContext,
) -> None:
    async with tiny_server(answer_forever, tls=tls_server_context) as port:
        target = ProbeTarget("127.0.0.1", port, scheme="https", verify_tls=False, keep_alive=True)
        prober = HttpProber(target)
        first, second = await prober.probe(), await prober.probe()
        await prober.aclose()
    assert (first.ok, second.ok) == (True, True)
    assert first.connect_ms is not None
    assert second.connect_ms is None


async def test_https_untrusted_certificate_fails(tls_server_context: ssl.SSLContext) -> None:
    async with tiny_server(answer_forever, tls=tls_server_context) as port:
        exchange = await probe_once(ProbeTarget("127.0.0.1", port, scheme="https"))
    assert_failed(exchange, "TLS: certificate verify failed")


async def test_cancellation_propagates_and_closes_the_connection() -> None:
    received, closed = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.set()
        try:
            await reader.read()
        finally:
            closed.set()

    async with tiny_server(silent) as port:
        task = asyncio.create_task(probe_once(ProbeTarget("127.0.0.1", port)))
        await received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(closed.wait(), 5)


def test_probes_run_on_uvloop() -> None:
    async def fresh_and_kept_alive() -> list[Exchange]:
        async with targets() as port:
            exchanges = [await probe_once(ProbeTarget("127.0.0.1", port))]
            prober = HttpProber(ProbeTarget("127.0.0.1", port, keep_alive=True))
            exchanges += [await prober.probe(), await prober.probe()]
            await prober.aclose()
            return exchanges

    exchanges: list[Exchange] = uvloop.run(fresh_and_kept_alive())
    assert [(e.status_code, e.connect_ms is None) for e in exchanges] == [
        (200, False),
        (200, False),
        (200, True),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"path": "no-slash"}, {"path": "/a b"}, {"host": "h\r\nX: y"}, {"port": 0}, {"timeout_s": 0}],
)
def test_invalid_targets_are_refused(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"host": "127.0.0.1", "port": 80, **kwargs}
    with pytest.raises(ValueError, match=r"."):
        ProbeTarget(**fields)


# The target policy, checked on every resolved address right before a connect.

Attempts = list[tuple[str, int]]


def _on_loopback(address: str) -> bool:
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.is_loopback


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Attempts:
    """Every connection attempt at the probe's connect seam, in order. Attempts off loopback
    are answered "refused" right there, so that no packet ever leaves this machine."""
    attempts: Attempts = []
    real_plain, real_tls = SocketConnection.open, TlsConnection.open

    async def plain(family: int, address: str, port: int) -> SocketConnection:
        attempts.append((address, port))
        if not _on_loopback(address):
            raise ConnectionRefusedError(111, "Connection refused")
        return await real_plain(family, address, port)

    async def tls(
        family: int, address: str, port: int, context: ssl.SSLContext, hostname: str
    ) -> TlsConnection:
        attempts.append((address, port))
        if not _on_loopback(address):
            raise ConnectionRefusedError(111, "Connection refused")
        return await real_tls(family, address, port, context, hostname)

    monkeypatch.setattr(SocketConnection, "open", plain)
    monkeypatch.setattr(TlsConnection, "open", tls)
    return attempts


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The DNS seam: each lookup answers the next list of addresses (a rebinding name)."""
    answers: list[list[str]] = []

    async def getaddrinfo(
        _host: str, port: int, **_kwargs: object
    ) -> list[tuple[int, int, int, str, tuple[str, int]]]:
        addresses = answers.pop(0)
        return [(_family(a), socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return answers


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("169.254.169.254", "link-local address"),
        ("::ffff:169.254.169.254", "link-local address"),
        ("fe80::1", "link-local address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("224.0.0.1", "multicast address"),
    ],
)
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_refused_literal_is_never_connected_to(
    connects: Attempts, host: str, reason: str, scheme: Literal["http", "https"]
) -> None:
    exchange = await probe_once(ProbeTarget(host, 80, scheme=scheme))
    assert_failed(exchange, f"target not allowed: {host} ({reason})")
    assert connects == []
    assert error_kind(exchange.error or "") == "target_not_allowed"


async def test_name_resolving_to_a_denied_address_is_never_connected_to(
    connects: Attempts,
) -> None:
    policy = TargetPolicy(deny=["127.0.0.0/8", "::1/128"])
    async with CountingTarget() as target:
        exchange = await probe_once(ProbeTarget("localhost", target.port), policy=policy)
    assert_failed(exchange, "target not allowed: ")
    assert "(denied by LATLAB_TARGETS_DENY " in (exchange.error or "")
    assert exchange.dns_ms is not None
    assert (connects, target.requests) == ([], 0)


async def test_control_api_port_is_never_connected_to(connects: Attempts) -> None:
    async with CountingTarget() as api:
        policy = TargetPolicy(api_port=api.port)
        exchange = await probe_once(ProbeTarget("127.0.0.1", api.port), policy=policy)
    assert_failed(exchange, f"target not allowed: 127.0.0.1 (port {api.port} is LatLab's own")
    assert (connects, api.requests) == ([], 0)


async def test_a_name_rebound_to_metadata_is_refused_on_the_next_probe(
    connects: Attempts, resolver: list[list[str]]
) -> None:
    resolver += [["127.0.0.1"], ["169.254.169.254"]]
    async with CountingTarget() as target:
        prober = HttpProber(ProbeTarget("lab.example", target.port))
        first, second = await prober.probe(), await prober.probe()
        await prober.aclose()
    assert (first.status_code, target.requests) == (200, 1)
    assert_failed(second, "target not allowed: 169.254.169.254 (link-local address)")
    assert connects == [("127.0.0.1", target.port)]


async def test_refused_addresses_are_skipped_for_the_allowed_ones(
    connects: Attempts, resolver: list[list[str]]
) -> None:
    resolver.append(["169.254.169.254", "0.0.0.0", "127.0.0.1"])
    async with CountingTarget() as target:
        exchange = await probe_once(ProbeTarget("lab.example", target.port))
    assert exchange.status_code == 200
    assert connects == [("127.0.0.1", target.port)]


class CountingPolicy(TargetPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def refusal_of_text(self, address: str, port: int) -> str | None:
        self.asked.append(address)
        return super().refusal_of_text(address, port)


async def test_the_policy_verdict_is_kept_per_prober() -> None:
    policy = CountingPolicy()
    async with CountingTarget() as target:
        prober = HttpProber(ProbeTarget("127.0.0.1", target.port), policy=policy)
        exchanges = [await prober.probe() for _ in range(3)]
        await prober.aclose()
    assert [e.status_code for e in exchanges] == [200, 200, 200]
    assert policy.asked == ["127.0.0.1"]
