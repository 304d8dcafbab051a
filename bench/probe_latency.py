"""How much latency does LatLab's probe add compared with a raw socket?

Runs the built-in targets server in a child process (uvloop) and times sequential
GET /api/latency exchanges with LatLab's HttpProber, a blocking-socket reference,
httpx and aiohttp, each with a fresh connection per request and with keep-alive.
Clients take turns in small blocks so that machine noise hits them alike.

    python bench/probe_latency.py [--n 2000]
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from time import perf_counter

import aiohttp
import httpx
import uvloop

from latlab.measure.http_probe import HttpProber, ProbeTarget

SERVER_CODE = """
import uvloop
from latlab.targets.counters import CountsTable
from latlab.targets.server import TargetsServer
from latlab.targets.tickets import MemoryTickets

async def main():
    targets = TargetsServer(work_s=3.0, tickets=MemoryTickets(), counts=CountsTable.in_memory(1))
    server = await targets.listen("127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

uvloop.run(main())
"""
BLOCK = 50  # requests per client per turn
PATH = "/api/latency"
Sample = Callable[[], Awaitable[float]]  # one exchange, returns its latency in ms


def _elapsed_ms(start_s: float) -> float:
    return (perf_counter() - start_s) * 1000.0


def _read_response(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed early")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
    length = int(found.group(1)) if found else 0
    while len(body) < length:
        body += sock.recv(65536)


class RawSocket:
    """The reference: blocking socket, hand-written request, minimal parsing."""

    def __init__(self, port: int, *, keep_alive: bool) -> None:
        connection = "keep-alive" if keep_alive else "close"
        self._port = port
        self._request = (
            f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n\r\n"
        )
        self._sock: socket.socket | None = None
        self._keep_alive = keep_alive

    async def sample(self) -> float:
        start_s = perf_counter()
        sock = self._sock or socket.create_connection(("127.0.0.1", self._port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(self._request.encode())
        _read_response(sock)
        latency_ms = _elapsed_ms(start_s)
        if self._keep_alive:
            self._sock = sock
        else:
            sock.close()
        return latency_ms

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


@asynccontextmanager
async def clients(port: int, *, keep_alive: bool) -> AsyncIterator[dict[str, Sample]]:
    url = f"http://127.0.0.1:{port}{PATH}"
    async with AsyncExitStack() as stack:
        prober = HttpProber(ProbeTarget("127.0.0.1", port, keep_alive=keep_alive))
        stack.push_async_callback(prober.aclose)
        raw = RawSocket(port, keep_alive=keep_alive)
        stack.callback(raw.close)
        limits = httpx.Limits(max_keepalive_connections=None if keep_alive else 0)
        httpx_client = await stack.enter_async_context(httpx.AsyncClient(limits=limits))
        connector = aiohttp.TCPConnector(force_close=not keep_alive)
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))

        async def latlab() -> float:
            exchange = await prober.probe()
            if not exchange.ok:
                raise RuntimeError(exchange.error)
            return exchange.latency_ms

        async def latlab_wall() -> float:
            start_s = perf_counter()
            await latlab()
            return _elapsed_ms(start_s)

        async def httpx_get() -> float:
            start_s = perf_counter()
            (await httpx_client.get(url)).raise_for_status()
            return _elapsed_ms(start_s)

        async def aiohttp_get() -> float:
            start_s = perf_counter()
            async with session.get(url) as response:
                await response.read()
            return _elapsed_ms(start_s)

        yield {
            "latlab": latlab,
            "latlab (wall)": latlab_wall,
            "raw socket": raw.sample,
            "httpx": httpx_get,
            "aiohttp": aiohttp_get,
        }


async def measure(samplers: dict[str, Sample], n: int) -> dict[str, list[float]]:
    for sample in samplers.values():  # warm-up: imports, caches, first connections
        for _ in range(min(n, 100)):
            await sample()
    results: dict[str, list[float]] = {name: [] for name in samplers}
    for _ in range(0, n, BLOCK):
        for name, sample in samplers.items():
            results[name].extend([await sample() for _ in range(BLOCK)])
    return {name: values[:n] for name, values in results.items()}


def report(mode: str, results: dict[str, list[float]]) -> None:
    raw_p50 = statistics.median(results["raw socket"])
    print(f"\n{mode}: {len(results['raw socket'])} sequential GET {PATH} per client")
    print(f"{'client':<16}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'p50/raw':>9}")
    for name, values in results.items():
        cuts = statistics.quantiles(values, n=100)
        p50, p90, p99 = cuts[49], cuts[89], cuts[98]
        print(f"{name:<16}{p50:>9.3f}{p90:>9.3f}{p99:>9.3f}{p50 / raw_p50:>8.2f}x")


async def run(port: int, n: int) -> dict[str, dict[str, list[float]]]:
    results = {}
    for mode, keep_alive in (("fresh connection", False), ("keep-alive", True)):
        async with clients(port, keep_alive=keep_alive) as samplers:
            results[mode] = await measure(samplers, n)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="exchanges per client and mode")
    n = max(BLOCK, parser.parse_args().n)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_CODE], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results = uvloop.run(run(port, n))
    finally:
        server.terminate()
        server.wait(timeout=10)
    for mode, mode_results in results.items():
        report(mode, mode_results)
    fresh_ratio = statistics.median(results["fresh connection"]["latlab"]) / statistics.median(
        results["fresh connection"]["raw socket"]
    )
    print(f"\nLatLab p50 / raw-socket p50 (fresh connection): {fresh_ratio:.2f}x (goal <= 1.30x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
