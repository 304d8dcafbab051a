"""Load-run shards: throughput of one shard against two, each on a ``latlab worker`` of its own.

One ``latlab serve`` on a SQLite file and the local Redis, LatLab's targets in a child process,
and two workers started with ``--capacity 1`` (one shard each). The target is ``/delay?ms=20``,
which is not CPU-bound: a closed-model shard with C connections can answer at most C / 20 ms,
so two shards with C connections each should send about twice what one does. The reference
is the one-shard run in the same session, on the same machine.

On a CPU-bound target the two shards share this machine's cores with the target and with
each other, so they cannot scale here (2 cores); the goal for a bigger machine is at least
1.8x with 2 shards on 4 or more cores, each worker on its own cores or machine.

    python bench/load_shards.py [--connections 32] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from _targets import targets_process
from fleet_dispatch import environment, process, serve, until, workers

RUNS = "/api/v1/load-runs"


async def run_once(
    api: httpx.AsyncClient, url: str, shards: int, per_shard: int, seconds: int
) -> dict[str, Any]:
    spec = {"url": url, "connections": per_shard * shards, "duration": f"{seconds}s"}
    spec["shards"] = shards
    created = await api.post(RUNS, json=spec, params={"start": True})
    created.raise_for_status()
    run_id = created.json()["id"]

    async def ended() -> bool:
        state = (await api.get(f"{RUNS}/{run_id}")).json()["state"]
        return state in ("completed", "failed", "stopped")

    await until(ended, timeout_s=seconds + 60)
    run: dict[str, Any] = (await api.get(f"{RUNS}/{run_id}")).json()
    if run["state"] != "completed":
        raise RuntimeError(f"load run {run_id} ended {run['state']}: {run['error']}")
    return run


async def measure(
    folder: Path, per_shard: int, seconds: int, rounds: int
) -> dict[int, list[dict[str, Any]]]:
    env = environment(folder / "latlab.db", f"bench-shards-{secrets.token_hex(4)}")
    with ExitStack() as stack:
        port = stack.enter_context(targets_process())
        _, api_port = serve(stack, env)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as api:
            for _ in range(2):
                stack.enter_context(process(["worker", "--capacity", "1"], env))

            async def two_up() -> bool:
                return len(await workers(api)) == 2

            await until(two_up)
            url = f"http://127.0.0.1:{port}/delay?ms=20"
            runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
            for _ in range(rounds):  # alternated, so drift on the machine hits both alike
                for shards in (1, 2):
                    runs[shards].append(await run_once(api, url, shards, per_shard, seconds))
    return runs


def report(runs: dict[int, list[dict[str, Any]]], per_shard: int, seconds: int) -> None:
    table = Table(title=f"/delay?ms=20, {per_shard} connections a shard, {seconds} s runs")
    for column in ("shards", "req/s (median)", "req/s (each run)", "p50 ms", "p99 ms", "ratio"):
        table.add_column(column)
    base = statistics.median(run["stats"]["rps"] for run in runs[1])
    for shards, done in runs.items():
        rps = [run["stats"]["rps"] for run in done]
        latency = done[-1]["stats"]["latency_ms"]
        table.add_row(
            str(shards),
            f"{statistics.median(rps):,.0f}",
            ", ".join(f"{value:,.0f}" for value in rps),
            f"{latency['p50']:.1f}",
            f"{latency['p99']:.1f}",
            f"{statistics.median(rps) / base:.2f}x",
        )
    console = Console()
    console.print(table)
    console.print(
        f"ideal per shard: {per_shard / 0.020:,.0f} req/s ({per_shard} connections / 20 ms); "
        "goal: 2 shards ~2x here, and >= 1.8x on a CPU-bound target with >= 4 cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=32, help="per shard")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        runs = asyncio.run(measure(Path(tmp), args.connections, args.seconds, args.rounds))
    report(runs, args.connections, args.seconds)
    Console().print(f"[dim]{time.monotonic() - started:.0f} s in all[/dim]")


if __name__ == "__main__":
    main()
