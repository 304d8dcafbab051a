"""Load-run shards: throughput of one shard against two, each on a ``latlab worker`` of its own.

One ``latlab serve`` on a SQLite file and the local Redis, LatLab's targets in a child process,
and two workers started with ``--capacity 1`` (one shard each). The target is ``/delay?ms=20``,
which is not CPU-bound: a closed-model shard with C connections can answer at most C / 20 ms,
so two shards with C connections each should send about twice what one does. The reference
is the one-shard run in the same session, on the same machine.

On a CPU-bound target the two shards share this machine's cores with the target and with
each other, so they cannot scale here (2 cores); the goal for a bigger machine is at least
1.8x with 2 shards on 4 or more cores, each worker on its own cores or machine.

Then, in the same setup, against a target in this process that counts the requests it reads
and when each came:

- exactness at the issue's full scale: ``-n 100000`` over the two shards; the target must
  count exactly 100,000, and the run's merged histogram must equal the sum of its shards',
  bucket for bucket;
- control latency of a sharded run (two shards, 400 req/s, a third worker idle beside the
  two), from the moment a control is sent: a pause or a stop, to the last request the target
  reads from either worker; a resume, to the first; the rate lowered to 4 req/s, to the last
  request of the old pace (goal: 100 ms each).

    python bench/load_shards.py [--connections 32] [--seconds 5] [--rounds 3]
                                [--exact 100000] [--controls 10]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from _counting import CountingServer
from _targets import targets_process
from fleet_dispatch import environment, process, serve, until, workers
from latlab.measure.load.seconds import SecondStats
from latlab.storage import open_store
from latlab.storage.records import TOTAL_BUCKET

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


async def ended(api: httpx.AsyncClient, run_id: int, timeout_s: float) -> dict[str, Any]:
    async def over() -> bool:
        state = (await api.get(f"{RUNS}/{run_id}")).json()["state"]
        return state in ("completed", "failed", "stopped")

    await until(over, timeout_s=timeout_s)
    run: dict[str, Any] = (await api.get(f"{RUNS}/{run_id}")).json()
    return run


async def totals(db: Path, kind: str, job_id: int) -> SecondStats:
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    try:
        stored = await store.histograms.read(kind, job_id, TOTAL_BUCKET, TOTAL_BUCKET)
    finally:
        await store.close()
    return SecondStats.from_payload(stored[TOTAL_BUCKET])


async def exact_run(api: httpx.AsyncClient, db: Path, requests: int) -> dict[str, Any]:
    """``requests`` over two shards against a target that counts what it reads."""
    async with CountingServer() as target:
        spec = {"url": target.url, "connections": 16, "requests": requests, "shards": 2}
        created = await api.post(RUNS, json=spec, params={"start": True})
        created.raise_for_status()
        run = await ended(api, created.json()["id"], 600)
        counted = target.requests
    merged = await totals(db, "load", run["id"])
    parts = [await totals(db, "load_shard", shard) for shard in run["progress"]["shards"]]
    summed = Counter[int]()
    for part in parts:
        summed.update(part.service.bucket_counts())
    same = Counter(merged.service.bucket_counts()) == summed
    return {"run": run, "counted": counted, "merge_equal": same, "parts": parts}


async def control_latencies(api: httpx.AsyncClient, cycles: int) -> dict[str, list[float]]:
    """A two-shard run at 400 req/s, ``cycles`` times: its rate lowered to 4 req/s (effective
    when the old pace's last request came), raised again, paused (the last request read after
    it), resumed (the first request read after it); finally stopped. In ms from the request
    sent."""
    found: dict[str, list[float]] = {"rate": [], "pause": [], "resume": [], "stop": []}
    async with CountingServer() as target:
        spec = {"url": target.url, "connections": 8, "rate": 400.0, "duration": "10m"}
        created = await api.post(RUNS, json={**spec, "shards": 2}, params={"start": True})
        created.raise_for_status()
        run = f"{RUNS}/{created.json()['id']}"
        for _ in range(cycles):
            await target.flowing()
            found["rate"].append(await _slowed(api, run, target))
            found["pause"].append(await _halted(api, f"{run}/pause", target))
            asked_s = time.perf_counter()
            (await api.post(f"{run}/resume")).raise_for_status()
            await target.flowing()
            found["resume"].append(_ms(target.first_arrival_after(asked_s), asked_s))
        await target.flowing()
        found["stop"].append(await _halted(api, f"{run}/stop", target))
    return found


async def _slowed(api: httpx.AsyncClient, run: str, target: CountingServer) -> float:
    asked_s = time.perf_counter()
    (await api.patch(run, json={"rate": 4.0})).raise_for_status()
    await asyncio.sleep(1.0)  # the new pace shows by then (a request every 0.5 s a shard)
    (await api.patch(run, json={"rate": 400.0})).raise_for_status()
    return _ms(target.slowed_after(asked_s, 0.1), asked_s)


async def _halted(api: httpx.AsyncClient, path: str, target: CountingServer) -> float:
    asked_s = time.perf_counter()
    (await api.post(path)).raise_for_status()
    await asyncio.sleep(1.0)  # anything still coming arrives by then
    return _ms(target.last_arrival_s(), asked_s)


def _ms(moment_s: float | None, asked_s: float) -> float:
    if moment_s is None:
        raise RuntimeError("the control's effect never showed at the target")
    return (moment_s - asked_s) * 1000


async def measure(
    folder: Path, per_shard: int, seconds: int, rounds: int, exact: int, controls: int
) -> tuple[dict[int, list[dict[str, Any]]], dict[str, Any], dict[str, list[float]]]:
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
            exactness = await exact_run(api, folder / "latlab.db", exact)
            # An idle third worker: a resumed shard must still go back to its own.
            stack.enter_context(process(["worker", "--capacity", "1"], env))

            async def three_up() -> bool:
                return len(await workers(api)) == 3

            await until(three_up)
            latencies = await control_latencies(api, controls)
    return runs, exactness, latencies


def report_exact(exactness: dict[str, Any], requests: int) -> None:
    run, console = exactness["run"], Console()
    parts = ", ".join(f"{part.requests:,}" for part in exactness["parts"])
    console.print(
        f"-n {requests:,} over 2 shards: {run['state']}; the target counted "
        f"{exactness['counted']:,}, the run {run['stats']['requests']:,} ({parts} a shard), "
        f"{run['stats']['rps']:,.0f} req/s; merged histogram equal to the sum of the shards': "
        f"{'yes' if exactness['merge_equal'] else 'NO'}"
    )


def report_controls(latencies: dict[str, list[float]]) -> None:
    title = "control of a 2-shard run at 400 req/s: request sent -> effect at the target"
    table = Table(title=title)
    for column in ("action", "n", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column)
    for action, values in latencies.items():
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        table.add_row(
            action,
            str(len(values)),
            f"{statistics.median(values):.1f}",
            f"{p99:.1f}",
            f"{ordered[-1]:.1f}",
        )
    console = Console()
    console.print(table)
    console.print("goal: pause, resume, stop and a rate change reach every shard within 100 ms")


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
    parser.add_argument("--exact", type=int, default=100_000, help="requests of the exact run")
    parser.add_argument("--controls", type=int, default=10, help="control cycles to time")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        runs, exactness, latencies = asyncio.run(
            measure(
                Path(tmp), args.connections, args.seconds, args.rounds, args.exact, args.controls
            )
        )
    report(runs, args.connections, args.seconds)
    report_exact(exactness, args.exact)
    report_controls(latencies)
    Console().print(f"[dim]{time.monotonic() - started:.0f} s in all[/dim]")
    counted, run = exactness["counted"], exactness["run"]
    if not (counted == run["stats"]["requests"] == args.exact and exactness["merge_equal"]):
        raise SystemExit(f"the -n {args.exact} run was not exact: see above")


if __name__ == "__main__":
    main()
