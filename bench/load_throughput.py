"""How fast does one ``latlab load`` worker send, next to wrk, aiohttp and Locust?

nginx (Debian ``nginx``, one worker, ``return 200 "ok"``, access log off) runs pinned to core 0
on a free loopback port; each generator in turn runs pinned to core 1 with the same
connections and duration: wrk (``-t1``), ``latlab load --workers 1`` (req/s from its
``--json``), an aiohttp ``ClientSession`` loop on uvloop (one task per connection), and
Locust's ``FastHttpUser`` headless (installed into this venv with pip if missing; skipped with a
note if it does not install). Goals: LatLab ≥ 0.6x wrk (0.5x the floor), ≥ 3x Locust.

Also measured: the peak RSS (``VmHWM``) of the load worker process over a 10-million-request
run, and what ``--probe 0.2s`` costs in req/s. The generators take turns for ``--rounds`` rounds
and the medians are reported. It installs neither nginx nor wrk: ``make services`` does.

    python bench/load_throughput.py [--quick] [--seconds 10] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL

from _nginx import Nginx, children_of, machine_busy_s, nginx_binary, nginx_server, status_kb

PROBE = "0.2s"
WRK = "wrk -t1"
LATLAB = "latlab load --workers 1"
PROBED = f"latlab load --workers 1 --probe {PROBE}"
AIOHTTP = "aiohttp ClientSession (uvloop)"
LOCUST = "Locust FastHttpUser (headless)"
LOAD_WORKER = "latlab.measure.load.process"

# One task per connection on one keep-alive session, each sending as soon as it has its answer.
AIOHTTP_LOOP = """
import asyncio, sys, time, aiohttp, uvloop

async def user(session, url, deadline_s, counts):
    while time.perf_counter() < deadline_s:
        async with session.get(url) as response:
            await response.read()
            if response.status != 200:
                sys.exit(f"status {response.status}")
        counts[0] += 1

async def main(url, connections, seconds):
    counts = [0]
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started_s = time.perf_counter()
        users = (user(session, url, started_s + seconds, counts) for _ in range(connections))
        await asyncio.gather(*users)
        print(counts[0] / (time.perf_counter() - started_s))

uvloop.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""

LOCUSTFILE = """
from locust import FastHttpUser, constant, task

class Get(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
"""


def pinned(core: int, *command: str) -> list[str]:
    return ["taskset", "-c", str(core), *command]


def wrk_rps(url: str, core: int, seconds: float, connections: int) -> float:
    command = pinned(core, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return float(rate.group(1))


def latlab_command(url: str, connections: int, json_path: Path, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "latlab", "load", url, "-c", str(connections)]
    return [*command, "--workers", "1", "--json", str(json_path), "--quiet", *extra]


def read_run(json_path: Path) -> dict[str, float]:
    summary = json.loads(json_path.read_text())
    if summary["errors"]:
        raise RuntimeError(f"latlab load counted {summary['errors']} errors")
    return {"rps": float(summary["rps"]), "requests": float(summary["requests"])}


def latlab_rps(
    url: str, core: int, seconds: float, connections: int, probe: str | None = None
) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        json_path = Path(tmp, "run.json")
        extra = ["-d", f"{seconds:g}s", *(["--probe", probe] if probe else [])]
        command = latlab_command(url, connections, json_path, *extra)
        subprocess.run(pinned(core, *command), check=True, env=quiet_env(), stdout=DEVNULL)
        return read_run(json_path)["rps"]


def quiet_env() -> dict[str, str]:
    return {**os.environ, "LATLAB_LOG_LEVEL": "warning"}


def aiohttp_rps(url: str, core: int, seconds: float, connections: int) -> float:
    command = [sys.executable, "-c", AIOHTTP_LOOP, url, str(connections), f"{seconds:g}"]
    result = subprocess.run(pinned(core, *command), capture_output=True, text=True, check=True)
    return float(result.stdout)


def locust_available() -> bool:
    """Locust, installed into this venv with pip on first use; False (with a note) if it
    does not install."""
    if importlib.util.find_spec("locust") is not None:
        return True
    print("Locust is not installed: pip install locust", flush=True)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "locust"]
    if subprocess.run(install, check=False).returncode != 0:
        print("Locust did not install: its row is skipped", flush=True)
        return False
    return True


# The summary's first table: "Aggregated  REQS  FAILS(..%) | avg min max med | REQ/S  FAILS/S".
LOCUST_TOTAL = re.compile(r"^\s*Aggregated\s+(\d+)\s+(\d+)\(.*\|\s*([\d.]+)\s+[\d.]+\s*$", re.M)


def locust_rps(url: str, core: int, seconds: float, connections: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp, "locustfile.py")
        locustfile.write_text(LOCUSTFILE)
        command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless"]
        command += ["-u", str(connections), "-r", str(connections), "-t", f"{seconds:g}s"]
        command += ["-H", url.rstrip("/"), "--only-summary", "--loglevel", "ERROR"]
        result = subprocess.run(pinned(core, *command), capture_output=True, text=True, check=True)
    output = result.stdout + result.stderr
    total = LOCUST_TOTAL.search(output)
    if total is None or not int(total.group(1)):
        raise RuntimeError(f"Locust sent nothing:\n{output}")
    if int(total.group(2)):
        raise RuntimeError(f"Locust counted {total.group(2)} failures:\n{output}")
    return float(total.group(3))


@dataclass(frozen=True)
class Rss:
    start_kb: int  # VmRSS once the run is under way (one second after the worker started)
    peak_kb: int  # VmHWM at the last reading before the worker ended
    requests: int


def worker_peak_rss(url: str, core: int, requests: int, connections: int) -> Rss:
    """Run ``latlab load -n requests`` and read its worker's memory from /proc meanwhile."""
    with tempfile.TemporaryDirectory() as tmp:
        json_path = Path(tmp, "run.json")
        command = latlab_command(url, connections, json_path, "-n", str(requests))
        cli = subprocess.Popen(pinned(core, *command), env=quiet_env(), stdout=DEVNULL)
        start_kb, peak_kb, worker, found_s = 0, 0, None, 0.0
        while cli.poll() is None:
            if worker is None:
                worker, found_s = load_worker_of(cli.pid), time.monotonic()
            else:
                status = status_kb(worker)
                peak_kb = max(peak_kb, status.get("VmHWM", 0))
                if not start_kb and time.monotonic() - found_s > 1:
                    start_kb = status.get("VmRSS", 0)
            time.sleep(0.2)
        if cli.returncode != 0:
            raise RuntimeError(f"latlab load exited with {cli.returncode}")
        return Rss(start_kb, peak_kb, int(read_run(json_path)["requests"]))


def load_worker_of(parent: int) -> int | None:
    for pid in children_of(parent):
        with contextlib.suppress(OSError):  # it ended meanwhile
            if LOAD_WORKER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


@dataclass(frozen=True)
class Scale:
    seconds: float
    rounds: int
    connections: int
    rss_requests: int


@dataclass(frozen=True)
class Results:
    rps: dict[str, float]  # median req/s per generator
    others: dict[str, float]  # median share of all cores that other processes used meanwhile
    server: dict[str, float]  # median share of its core nginx used meanwhile
    client: dict[str, float]  # median share of the generator's core that was busy meanwhile
    rss: Rss


def our_cpu_s(nginx: Nginx) -> float:
    """CPU time of this process, its finished children (the generators) and nginx."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours_s = mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime
    return ours_s + nginx.cpu_s()


def watched(nginx: Nginx, core: int, run: Callable[[], float]) -> tuple[float, ...]:
    """``run()``'s req/s; the share of the machine's cores that processes other than ours
    kept busy meanwhile (when it is high, req/s is understated); and the share of its core
    nginx used (near 100 %, the server, not the generator, set the pace); and the share of
    the generator's ``core`` that was busy (start-up included)."""
    ours_s, busy_s, wall_s = our_cpu_s(nginx), machine_busy_s(), time.monotonic()
    server_s, client_s = nginx.cpu_s(), machine_busy_s(core)
    rps = run()
    others_s = machine_busy_s() - busy_s - (our_cpu_s(nginx) - ours_s)
    wall_s = time.monotonic() - wall_s
    server = (nginx.cpu_s() - server_s) / wall_s
    client = (machine_busy_s(core) - client_s) / wall_s
    return rps, max(0.0, others_s / (wall_s * (os.cpu_count() or 1))), server, client


def measure(scale: Scale, with_locust: bool) -> Results:
    server_core, client_core = 0, min(1, (os.cpu_count() or 1) - 1)
    args = (client_core, scale.seconds, scale.connections)
    runs: dict[str, Callable[[str], float]] = {
        WRK: lambda url: wrk_rps(url, *args),
        LATLAB: lambda url: latlab_rps(url, *args),
        PROBED: lambda url: latlab_rps(url, *args, probe=PROBE),
        AIOHTTP: lambda url: aiohttp_rps(url, *args),
    }
    if with_locust:
        runs[LOCUST] = lambda url: locust_rps(url, *args)
    samples: dict[str, list[tuple[float, ...]]] = {name: [] for name in runs}
    with nginx_server(server_core) as nginx:
        for _ in range(scale.rounds):  # in turns, so that noise hits every generator alike
            for name, run in runs.items():
                samples[name].append(watched(nginx, client_core, functools.partial(run, nginx.url)))
        rss = worker_peak_rss(nginx.url, client_core, scale.rss_requests, scale.connections)
    rps, others, server, client = (
        {name: statistics.median(run[part] for run in runs_of) for name, runs_of in samples.items()}
        for part in range(4)
    )
    return Results(rps, others, server, client, rss)


def report(results: Results) -> None:
    rps = results.rps
    head = f"{'generator':38} {'req/s':>8} {'vs wrk':>6} {'nginx':>5} {'own':>4} {'µs/req':>6}"
    print(f"{head} {'others':>6}")
    for name, rate in rps.items():
        server, client = results.server[name], results.client[name]
        shares = f"{server:>5.0%} {client:>4.0%} {client / rate * 1e6:>6.1f}"
        others = results.others[name]
        print(f"{name:38} {rate:>8,.0f} {rate / rps[WRK]:>5.2f}x {shares} {others:>6.0%}")
    ratio = rps[LATLAB] / rps[WRK]
    verdict = "met" if ratio >= 0.6 else "floor met" if ratio >= 0.5 else "NOT met"
    print(f"\ngoal LatLab ≥ 0.6x wrk (floor 0.5x): {ratio:.2f}x, {verdict}")
    if LOCUST in rps:
        locust_ratio = rps[LATLAB] / rps[LOCUST]
        met = "met" if locust_ratio >= 3 else "NOT met"
        print(f"goal LatLab ≥ 3x Locust FastHttpUser: {locust_ratio:.2f}x, {met}")
    cost = 1 - rps[PROBED] / rps[LATLAB]
    rates = f"{rps[PROBED]:,.0f} against {rps[LATLAB]:,.0f}"
    print(f"--probe {PROBE} costs {cost:.1%} of req/s ({rates})")
    rss = results.rss
    print(
        f"load worker RSS over {rss.requests:,} requests: {rss.start_kb / 1024:.1f} MB after "
        f"its first second, peak {rss.peak_kb / 1024:.1f} MB (goal < 100 MB for 10,000,000)"
    )
    if results.server[WRK] > 0.9:
        print("nginx: its core's share; near 100 % with wrk, wrk's req/s is nginx's ceiling")
    print("own: the generator's core busy; µs/req: that core's CPU per request (start-up in)")
    if max(results.others.values()) > 0.05:
        print("others: the share of both cores other processes used; req/s is understated")


def parse_scale() -> Scale:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s runs, one round, 300k RSS run")
    parser.add_argument("--seconds", type=float, help="per generator run (default 10, quick 2)")
    parser.add_argument("--rounds", type=int, help="default 3, quick 1")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rss-requests", type=int, help="default 10,000,000, quick 300,000")
    args = parser.parse_args()
    return Scale(
        seconds=args.seconds or (2.0 if args.quick else 10.0),
        rounds=args.rounds or (1 if args.quick else 3),
        connections=args.connections,
        rss_requests=args.rss_requests or (300_000 if args.quick else 10_000_000),
    )


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so that nginx and the running generator are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scale = parse_scale()
    if nginx_binary() is None:
        sys.exit("nginx not found: apt-get install nginx (make services installs it)")
    for tool, package in (("wrk", "wrk"), ("taskset", "util-linux")):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install {package} (make services installs it)")
    with_locust = locust_available()
    results = measure(scale, with_locust)
    print(f"\nGET / on nginx (1 worker, core 0); each generator on core 1, {scale.connections}")
    print(f"connections, {scale.seconds:g} s a run, median of {scale.rounds} round(s)\n")
    report(results)


if __name__ == "__main__":
    main()
