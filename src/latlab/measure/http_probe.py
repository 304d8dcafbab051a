"""Lean HTTP/1.1 client that times one exchange, and checks the response when asked.

General-purpose clients add about a millisecond of their own work per request, which
would be measured as latency. Plain HTTP here runs on a non-blocking socket that only
waits on the event loop when a syscall would block (asyncio transports cost tens of
microseconds to set up per connection), and responses go straight into httptools.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from time import perf_counter
from typing import Literal

from latlab.measure.connections import Connection, SocketConnection, TlsConnection
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import ExpectedStatus, RequestSpec, Url
from latlab.measure.response import ProbeError, Response, ScanningResponse

_NEEDLE_SHOWN = 40  # characters of a body check's text quoted in its failure


@dataclass(frozen=True, slots=True)
class ResponseChecks:
    """What a response must be to count as a success; with none, any complete response does."""

    status: ExpectedStatus | None = None
    body_contains: bytes = b""
    max_latency_ms: float | None = None

    def failure(self, status_code: int, latency_ms: float, body_found: bool) -> str | None:
        """The first check the response fails, named as the experiment field, or None."""
        if self.status is not None and status_code not in self.status:
            return f"expect_status: got {status_code}, not {self.status}"
        if self.body_contains and not body_found:
            shown = self.body_contains.decode("utf-8", "replace")[:_NEEDLE_SHOWN]
            return f"expect_body_contains: {shown!r} not in the body"
        if self.max_latency_ms is not None and latency_ms > self.max_latency_ms:
            bound_ms = self.max_latency_ms
            return f"expect_max_latency_ms: took {latency_ms:.3f} ms, over {bound_ms:g} ms"
        return None


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Where and how to probe; host may be a name or an IPv4/IPv6 literal."""

    host: str
    port: int
    path: str = "/api/latency"
    scheme: Literal["http", "https"] = "http"
    timeout_s: float = 10.0
    verify_tls: bool = True
    keep_alive: bool = False
    request: RequestSpec = field(default_factory=RequestSpec)
    checks: ResponseChecks = field(default_factory=ResponseChecks)

    def __post_init__(self) -> None:
        text = self.host + self.path
        # Anything that could split the request line or headers is refused up front.
        if not text.isascii() or any(c.isspace() for c in text):
            raise ValueError("host and path must be ASCII without whitespace")
        if not self.path.startswith("/"):
            raise ValueError("path must start with '/'")
        if not 0 < self.port < 65536:
            raise ValueError(f"port out of range: {self.port}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.checks.body_contains and self.request.method == "HEAD":
            raise ValueError("a HEAD response has no body to check")

    @property
    def url(self) -> Url:
        return Url(self.scheme, self.host, self.port, self.path)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One timed exchange. Any complete HTTP response is a measurement, whatever its status,
    unless it fails a check: then error names the check, status and latency stay measured.
    Without a response status_code is 0, latency_ms -1.0 and error says why."""

    status_code: int
    latency_ms: float
    connect_ms: float | None
    ttfb_ms: float | None
    dns_ms: float | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _Phases:
    """Timestamps of the exchange in progress (perf_counter seconds, phases in ms)."""

    start_s: float = 0.0
    sent_s: float = 0.0
    first_byte_s: float | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None

    def restart(self) -> None:
        self.start_s = perf_counter()
        self.first_byte_s = self.dns_ms = self.connect_ms = None

    def ttfb_ms(self) -> float | None:
        return None if self.first_byte_s is None else _ms(self.sent_s, self.first_byte_s)

    def failure(self, error: str) -> Exchange:
        return Exchange(0, -1.0, self.connect_ms, self.ttfb_ms(), self.dns_ms, error)


def _ms(start_s: float, end_s: float) -> float:
    return (end_s - start_s) * 1000.0


_PLAIN_ERRORS: tuple[tuple[type[OSError], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset"),
)


def describe_error(exc: BaseException) -> str:
    """Short human text for a transport-level failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"DNS: {exc.strerror}"
    for kind, text in _PLAIN_ERRORS:
        if isinstance(exc, kind):
            return text
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def tls_context(verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context; building one loads a CA bundle (~25 ms), so share them."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        # Lab targets often run on self-signed certificates; the user opted out explicitly.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _ip_family(host: str) -> socket.AddressFamily | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


_VERDICTS_KEPT = 256


class HttpProber:
    """Times requests to one target, each sent as the same bytes, built once.

    Fresh connection per probe by default; with keep_alive reuses one connection,
    reconnecting transparently if the server closed it.
    """

    def __init__(
        self,
        target: ProbeTarget,
        tls: ssl.SSLContext | None = None,
        policy: TargetPolicy | None = None,
    ) -> None:
        self._target = target
        # Without a policy from the settings, the built-in denies still apply.
        self._policy = policy if policy is not None else TargetPolicy()
        self._verdicts: dict[str, str | None] = {}  # address -> refusal; the port is fixed
        self._request = target.request.encode(target.url, keep_alive=target.keep_alive)
        self._headers_only = target.request.method == "HEAD"
        if target.scheme == "https" and tls is None:
            tls = tls_context(target.verify_tls)
        self._tls = tls if target.scheme == "https" else None
        self._family = _ip_family(target.host)
        self._conn: Connection | None = None

    async def probe(self) -> Exchange:
        """One timed exchange; failures come back as an Exchange, cancellation propagates."""
        phases = _Phases()
        timeout_s = self._target.timeout_s
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                # The clock starts once the timer is armed: that is client bookkeeping.
                phases.start_s = perf_counter()
                return await self._exchange(phases)
        except TimeoutError as exc:
            self._discard()
            if deadline.expired():
                return phases.failure(f"timeout after {float(timeout_s)} s")
            return phases.failure(describe_error(exc))
        except (OSError, ProbeError) as exc:
            self._discard()
            return phases.failure(describe_error(exc))
        except BaseException:
            self._discard()
            raise

    async def aclose(self) -> None:
        self._discard()

    async def _exchange(self, phases: _Phases) -> Exchange:
        if self._conn is not None:
            try:
                return await self._roundtrip(self._conn, phases)
            except (OSError, ProbeError):
                if phases.first_byte_s is not None:
                    raise
            # The server dropped the idle connection; time a fresh one from scratch.
            self._discard()
            phases.restart()
        self._conn = await self._connect(phases)
        return await self._roundtrip(self._conn, phases)

    def _new_response(self) -> Response:
        needle = self._target.checks.body_contains
        if needle:  # never with HEAD: ProbeTarget refuses it
            return ScanningResponse(needle)
        return Response(headers_only=self._headers_only)

    async def _roundtrip(self, conn: Connection, phases: _Phases) -> Exchange:
        response = self._new_response()
        phases.sent_s = perf_counter()
        await conn.send(self._request)
        while not response.complete:
            data = await conn.recv()
            if not data:
                response.feed_eof(any_bytes=phases.first_byte_s is not None)
                break
            if phases.first_byte_s is None:
                phases.first_byte_s = perf_counter()
            response.feed(data)
        if not (self._target.keep_alive and response.keep_alive):
            self._discard()
        latency_ms = _ms(phases.start_s, response.done_s)
        return Exchange(
            status_code=response.status_code,
            latency_ms=latency_ms,
            connect_ms=phases.connect_ms,
            ttfb_ms=phases.ttfb_ms(),
            dns_ms=phases.dns_ms,
            error=self._target.checks.failure(
                response.status_code, latency_ms, response.body_found
            ),
        )

    async def _connect(self, phases: _Phases) -> Connection:
        addresses = await self._resolve(phases)
        started_s = perf_counter()
        error: OSError | None = None
        refused: ProbeError | None = None
        for family, address in addresses:
            refusal = self._refusal(address)
            if refusal is not None:
                refused = refused or ProbeError(f"target not allowed: {address} ({refusal})")
                continue  # checked on the resolved address: a rebound name gets no further
            try:
                conn = await self._open(family, address)
            except ssl.SSLError:
                raise
            except OSError as exc:
                error = exc  # try the next address, as a browser would
                continue
            phases.connect_ms = _ms(started_s, perf_counter())
            return conn
        raise error or refused or OSError("no address to connect to")

    def _refusal(self, address: str) -> str | None:
        """The policy's verdict on ``address``, kept: this runs before every connect."""
        try:
            return self._verdicts[address]
        except KeyError:
            pass
        if len(self._verdicts) >= _VERDICTS_KEPT:
            self._verdicts.clear()  # a name resolving to ever new addresses
        verdict = self._verdicts[address] = self._policy.refusal_of_text(address, self._target.port)
        return verdict

    async def _open(self, family: int, address: str) -> Connection:
        port = self._target.port
        if self._tls is None:
            return await SocketConnection.open(family, address, port)
        return await TlsConnection.open(family, address, port, self._tls, self._target.host)

    async def _resolve(self, phases: _Phases) -> list[tuple[int, str]]:
        host = self._target.host
        if self._family is not None:
            return [(self._family, host)]
        started_s = perf_counter()
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, self._target.port, type=socket.SOCK_STREAM
        )
        phases.dns_ms = _ms(started_s, perf_counter())
        return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


async def probe_once(
    target: ProbeTarget, tls: ssl.SSLContext | None = None, policy: TargetPolicy | None = None
) -> Exchange:
    """One probe on its own connection, closed afterwards."""
    prober = HttpProber(target, tls, policy)
    try:
        return await prober.probe()
    finally:
        await prober.aclose()
