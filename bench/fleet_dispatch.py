"""Workers: dispatch latency, control latency and failover, against jobs run in the API process.

One ``latlab serve`` on a SQLite file and the local Redis, the targets in a child process, and
two ``latlab worker`` processes. Every figure is read from the probes' own timestamps (the
moment a probe started, written by whoever ran it), not from polling:

- dispatch: ``POST /api/v1/experiments?start=true`` sent → the first probe started;
- control: ``POST …/pause`` sent → the last probe started (nothing starts after the halt);
- failover: SIGKILL of the worker running a 20 ms experiment → the first probe elsewhere.

The reference is the same API process before any worker is up (jobs run in-process), so
ratios compare like with like on this machine. Goals (issue 13): control within 100 ms;
failover within 5 s (a 3 s lease).

    python bench/fleet_dispatch.py [--trials 30] [--failovers 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from _targets import free_port, targets_process, wait_listening

REDIS_URL = os.environ.get("LATLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def environment(db: Path, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{db}",
        "LATLAB_REDIS_URL": REDIS_URL,
        "LATLAB_REDIS_PREFIX": prefix,
        "LATLAB_LOG_LEVEL": "warning",
    }


@contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m latlab ARGS``, its output to ``log`` if given; terminated at the end."""
    command = [sys.executable, "-m", "latlab", *args]
    if log is None:
        child = subprocess.Popen(command, env=env)
    else:
        with log.open("wb") as out:
            child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait(timeout=30)


def serve(
    stack: ExitStack, env: dict[str, str], log: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``latlab serve --no-targets`` on a free port, listening; closed with ``stack``."""
    api_port = free_port()
    child = stack.enter_context(
        process(["serve", "--no-targets", "--port", str(api_port)], env, log)
    )
    wait_listening(api_port, child)
    return child, api_port


async def workers(api: httpx.AsyncClient) -> dict[str, list[tuple[str, int]]]:
    data = (await api.get("/api/v1/workers")).json()["data"]
    return {w["id"]: [(j["kind"], j["id"]) for j in w["jobs"]] for w in data}


async def until(check: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        await asyncio.sleep(0.01)


async def probe_moments(api: httpx.AsyncClient, experiment_id: int) -> list[float]:
    rows: list[dict[str, Any]] = []
    while True:
        page = await api.get(
            f"/api/v1/experiments/{experiment_id}/results",
            params={"offset": len(rows), "limit": 1000},
        )
        rows += page.json()["data"]
        if len(rows) >= page.json()["count"]:
            return sorted(datetime.fromisoformat(r["timestamp"]).timestamp() for r in rows)


async def create(api: httpx.AsyncClient, port: int, count: int, interval_s: float) -> int:
    spec = {"host": "127.0.0.1", "port": port, "count": count, "interval_s": interval_s}
    response = await api.post("/api/v1/experiments?start=true", json=spec)
    response.raise_for_status()
    return int(response.json()["id"])


async def dispatch_ms(api: httpx.AsyncClient, port: int) -> float:
    sent = time.time()
    experiment_id = await create(api, port, count=1, interval_s=1.0)

    async def probed() -> bool:
        return bool(await probe_moments(api, experiment_id))

    await until(probed)
    return ((await probe_moments(api, experiment_id))[0] - sent) * 1000


async def control_ms(api: httpx.AsyncClient, port: int) -> float:
    experiment_id = await create(api, port, count=1_000_000, interval_s=0.005)

    async def probing() -> bool:
        return len(await probe_moments(api, experiment_id)) >= 20

    await until(probing)
    sent = time.time()
    (await api.post(f"/api/v1/experiments/{experiment_id}/pause")).raise_for_status()
    await asyncio.sleep(0.5)  # the worker's last checkpoint lands
    last = (await probe_moments(api, experiment_id))[-1]
    await api.post(f"/api/v1/experiments/{experiment_id}/stop")
    return (last - sent) * 1000


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def trials(api: httpx.AsyncClient, port: int, count: int) -> dict[str, tuple[float, float]]:
    dispatch = [await dispatch_ms(api, port) for _ in range(count)]
    control = [await control_ms(api, port) for _ in range(count)]
    return {"dispatch": percentiles(dispatch), "control": percentiles(control)}


async def failover_s(
    api: httpx.AsyncClient, port: int, by_id: dict[str, subprocess.Popen[bytes]]
) -> float:
    experiment_id = await create(api, port, count=3_000, interval_s=0.02)

    async def held() -> bool:
        return any(("probe", experiment_id) in jobs for jobs in (await workers(api)).values())

    await until(held)
    await asyncio.sleep(0.5)
    holder = next(w for w, jobs in (await workers(api)).items() if ("probe", experiment_id) in jobs)
    killed = time.time()
    by_id.pop(holder).send_signal(signal.SIGKILL)

    async def resumed() -> bool:
        return any(moment > killed for moment in await probe_moments(api, experiment_id))

    await until(resumed)
    first_after = min(m for m in await probe_moments(api, experiment_id) if m > killed)
    await api.post(f"/api/v1/experiments/{experiment_id}/stop")
    return first_after - killed


async def run(folder: Path, count: int, failovers: int) -> None:
    env = environment(folder / "latlab.db", f"bench-fleet-{secrets.token_hex(4)}")
    with ExitStack() as stack:
        port = stack.enter_context(targets_process())
        _, api_port = serve(stack, env)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as api:
            local = await trials(api, port, count)
            by_id: dict[str, subprocess.Popen[bytes]] = {}
            for _ in range(failovers + 1):
                await start_worker(api, env, stack, by_id)
            remote = await trials(api, port, count)
            gaps = []
            for _ in range(failovers):
                gaps.append(await failover_s(api, port, by_id))
                await start_worker(api, env, stack, by_id)
    report(local, remote, gaps, count)


async def start_worker(
    api: httpx.AsyncClient,
    env: dict[str, str],
    stack: ExitStack,
    by_id: dict[str, subprocess.Popen[bytes]],
) -> None:
    before = set(await workers(api))
    child = stack.enter_context(process(["worker", "--capacity", "8"], env))

    async def joined() -> bool:
        return bool(set(await workers(api)) - before - set(by_id))

    await until(joined)
    (new,) = set(await workers(api)) - before - set(by_id)
    by_id[new] = child


def report(
    local: dict[str, tuple[float, float]],
    remote: dict[str, tuple[float, float]],
    gaps: list[float],
    count: int,
) -> None:
    table = Table(title=f"Workers vs in-process ({count} trials each)")
    for column in ("what", "in-process p50/p99 ms", "on a worker p50/p99 ms", "ratio p50"):
        table.add_column(column)
    for what in ("dispatch", "control"):
        (lp50, lp99), (rp50, rp99) = local[what], remote[what]
        ratio = f"{rp50 / lp50:.1f}x" if lp50 > 0 else "-"
        table.add_row(what, f"{lp50:.1f} / {lp99:.1f}", f"{rp50:.1f} / {rp99:.1f}", ratio)
    console = Console()
    console.print(table)
    if gaps:
        console.print("failover after SIGKILL, s: " + ", ".join(f"{gap:.2f}" for gap in gaps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--failovers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp), args.trials, args.failovers))


if __name__ == "__main__":
    main()
