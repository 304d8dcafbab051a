"""How many /sum requests per second does one core serve?

Each server runs alone, pinned to one core (``taskset``), and wrk (Debian ``wrk``) loads it
from another core over loopback: ``GET /sum?a=3&b=3``, keep-alive, a few seconds each, all
in the same run. Servers: LatLab's targets (``latlab targets``), the same route on
aiohttp.web (uvloop), and the seed's original design, stdlib ``http.server`` in one
thread (HTTP/1.0, a connection per request, as the original answered). Goals: ≥ 3x
aiohttp.web, ≥ 10x the stdlib server.

The servers take turns for a few rounds and the medians are reported. Besides requests per
second, the server's CPU time per request (from /proc) is printed: on a machine where other
work competes for the cores, req/s drops for every server, while CPU time per request still
compares their costs.

    python bench/targets_throughput.py [--seconds 3] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _targets import free_port, wait_listening

PATH = "/sum?a=3&b=3"
EXPECTED = b"Sum: 6.0"

AIOHTTP = """
import sys, uvloop
from aiohttp import web

async def total(request):
    numbers = []
    for value in request.query.values():
        try:
            numbers.append(float(value))
        except ValueError:
            pass
    return web.Response(text=f"Sum: {sum(numbers)}" if numbers else "Sum: 0")

app = web.Application()
app.router.add_get("/{tail:.*}", total)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop())
"""

# The seed's server: http.server, one thread, parse_qs, float() of each value.
STDLIB = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

class Handler(BaseHTTPRequestHandler):
    protocol_version = sys.argv[2]

    def do_GET(self):
        numbers = []
        for values in parse_qs(urlsplit(self.path).query).values():
            for value in values:
                try:
                    numbers.append(float(value))
                except ValueError:
                    pass
        body = (f"Sum: {sum(numbers)}" if numbers else "Sum: 0").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(HTTPServer):
    def handle_error(self, request, client_address):
        pass  # wrk resets its connections when it stops

Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


LATLAB = "LatLab targets"
AIOHTTP_NAME = "aiohttp.web (uvloop)"
SEED = "stdlib http.server, seed design (HTTP/1.0)"


def server_commands(port: int) -> dict[str, list[str]]:
    py = sys.executable
    return {
        LATLAB: [py, "-m", "latlab", "targets", "--port", str(port)],
        AIOHTTP_NAME: [py, "-c", AIOHTTP, str(port)],
        SEED: [py, "-c", STDLIB, str(port), "HTTP/1.0"],
    }


@dataclass
class Result:
    rate: float  # requests per second
    cpu_us: float  # server CPU time per request


def cpu_s(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def pinned_server(command: list[str], port: int, core: int) -> Iterator[int]:
    env = {**os.environ, "LATLAB_LOG_LEVEL": "warning"}
    process = subprocess.Popen(["taskset", "-c", str(core), *command], env=env)
    try:
        wait_listening(port, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATH}", timeout=5) as response:
            assert response.read() == EXPECTED, "the server does not answer the sum right"
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def wrk(port: int, core: int, seconds: int, connections: int, pid: int) -> Result:
    command = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}"]
    command += [f"-d{seconds}s", f"http://127.0.0.1:{port}{PATH}"]
    cpu_before_s = cpu_s(pid)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu_used_s = cpu_s(pid) - cpu_before_s
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{errors.group(1)} error responses:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return Result(float(rate.group(1)), cpu_used_s / int(total.group(1)) * 1e6)


def measure(rounds: int, seconds: int, connections: int) -> dict[str, Result]:
    """Median per server over ``rounds`` rounds; servers take turns, so noise hits all alike."""
    server_core, client_core = 0, min(1, (os.cpu_count() or 1) - 1)
    samples: dict[str, list[Result]] = {name: [] for name in server_commands(0)}
    for _ in range(rounds):
        for name, runs in samples.items():
            port = free_port()
            with pinned_server(server_commands(port)[name], port, server_core) as pid:
                runs.append(wrk(port, client_core, seconds, connections, pid))
    return {
        name: Result(
            statistics.median(r.rate for r in runs), statistics.median(r.cpu_us for r in runs)
        )
        for name, runs in samples.items()
    }


def report(results: dict[str, Result]) -> None:
    print(f"{'server':44} {'req/s':>10} {'ratio':>7} {'CPU/req':>10} {'ratio':>7}")
    ours = results[LATLAB]
    for name, result in results.items():
        rate_ratio, cpu_ratio = ours.rate / result.rate, result.cpu_us / ours.cpu_us
        print(
            f"{name:44} {result.rate:>10,.0f} {rate_ratio:>6.2f}x "
            f"{result.cpu_us:>8.1f}µs {cpu_ratio:>6.2f}x"
        )
    for name, goal in ((AIOHTTP_NAME, 3), (SEED, 10)):
        rate_ratio = ours.rate / results[name].rate
        cpu_ratio = results[name].cpu_us / ours.cpu_us
        print(f"goal ≥ {goal}x {name}: {rate_ratio:.2f}x req/s, {cpu_ratio:.2f}x CPU/request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install wrk util-linux")
    results = measure(args.rounds, args.seconds, args.connections)
    print(f"GET {PATH}, wrk -t1 -c{args.connections}, {args.seconds} s per run")
    print(f"server on core 0, wrk on core 1; median of {args.rounds} rounds\n")
    report(results)


if __name__ == "__main__":
    main()
