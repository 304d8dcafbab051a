"""The lifespan's probe client: TLS contexts built once, a private CA honoured."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trustme

from harness import CountingTarget
from latlab.measure.client import ProbeClient
from latlab.measure.http_probe import ProbeTarget
from latlab.measure.policy import TargetPolicy

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@asynccontextmanager
async def https_server(ca: trustme.CA) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def test_tls_contexts_are_built_once_per_verify_mode() -> None:
    client = ProbeClient()
    assert client.tls_context(True) is client.tls_context(True)
    assert client.tls_context(False) is not client.tls_context(True)
    assert client.tls_context(False).verify_mode is ssl.CERT_NONE


async def test_a_private_ca_verifies_a_lab_target(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with https_server(ca) as port:
        target = ProbeTarget("127.0.0.1", port, scheme="https")
        verified = await ProbeClient(ca_file=str(ca_file)).probe_once(target)
        untrusted = await ProbeClient().probe_once(target)
    assert (verified.status_code, verified.error) == (200, None)
    assert untrusted.error is not None
    assert "certificate verify failed" in untrusted.error


async def test_plain_http_probers_need_no_tls(unused_port: int) -> None:
    exchange = await ProbeClient().probe_once(ProbeTarget("127.0.0.1", unused_port))
    assert (exchange.status_code, exchange.latency_ms) == (0, -1.0)


async def test_probes_are_checked_against_the_client_policy() -> None:
    client = ProbeClient(policy=TargetPolicy(deny=["127.0.0.0/8"]))
    async with CountingTarget() as target:
        target_spec = ProbeTarget("127.0.0.1", target.port)
        once = await client.probe_once(target_spec)
        prober = client.prober(target_spec)
        probed = await prober.probe()
        await prober.aclose()
    refused = "target not allowed: 127.0.0.1 (denied by LATLAB_TARGETS_DENY 127.0.0.0/8)"
    assert (once.error, probed.error, target.requests) == (refused, refused, 0)
