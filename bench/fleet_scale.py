"""Workers at full scale: 50 experiments and 1,000 bots over two API processes and two workers
on one PostgreSQL store, with one API process and one worker killed (SIGKILL) mid-run.

The test suite runs the same scenario at reduced scale (tests/cli/test_worker_fleet.py: 30
experiments, 200 bots). Here: every experiment must end with exactly its probes (seq
0..59, none twice) and every bot must print on with no number skipped. The reference is the
same scenario with nothing killed, in the same session: the ratio is what the kills cost in
time to finish every experiment.

    python bench/fleet_scale.py [--experiments 50] [--bots 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table

from _targets import targets_process
from fleet_dispatch import environment, process, serve, until, workers
from latlab.storage import JobState, open_store
from latlab.storage.records import ProgressUpdate

ADMIN_DSN = os.environ.get(
    "LATLAB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PROBES, INTERVAL_S, TICK_S = 60, 0.1, 0.25


@dataclass
class Outcome:
    finished_s: float  # start → every experiment completed
    exact: int  # experiments with seq 0..PROBES-1, each once
    bots_on: int  # bots that printed on, no number skipped
    bots_back_s: float | None  # kill → every bot printed on (None: nothing killed)


@asynccontextmanager
async def database() -> AsyncIterator[str]:
    name = f"latlab_bench_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{ADMIN_DSN.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def orphan_bots(url: str, count: int) -> list[int]:
    """Bots left running by a process that is gone: an API process adopts them at once."""
    store = await open_store(url)
    try:
        made = await store.create_jobs("bot", [{"start_number": 0}] * count, state=JobState.RUNNING)
        await store.checkpoint([], [ProgressUpdate("bot", j.id, {"fleet": "gone"}) for j in made])
        return [job.id for job in made]
    finally:
        await store.close()


def numbers(logs: list[Path]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for log in logs:
        for bot, number in re.findall(rb"bot (\d+): (-?\d+)", log.read_bytes()):
            found.setdefault(int(bot), []).append(int(number))
    return found


async def scenario(folder: Path, experiments: int, bots: int, *, kill: bool) -> Outcome:
    async with database() as url:
        env = {
            **environment(folder / "unused.db", f"bench-scale-{secrets.token_hex(4)}"),
            "LATLAB_STORAGE_URL": url,
            "LATLAB_BOTS_TICK_S": str(TICK_S),
            "LATLAB_LOG_LEVEL": "info",
        }
        bot_ids = await orphan_bots(url, bots)
        with ExitStack() as stack:
            port = stack.enter_context(targets_process())
            capacity = ["--capacity", str(experiments + 10)]
            logs = [folder / f"worker-{n}-{kill}.log" for n in "ab"]
            pair = [stack.enter_context(process(["worker", *capacity], env, log)) for log in logs]
            apis = [serve(stack, env, folder / f"api-{n}-{kill}.log") for n in "ab"]
            logs += [folder / f"api-{n}-{kill}.log" for n in "ab"]  # a bot run there first
            base_url = f"http://127.0.0.1:{apis[1][1]}"
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as api:
                return await _run(
                    api, port, experiments, bot_ids, pair, apis[0][0], logs, kill=kill
                )


async def _run(
    api: httpx.AsyncClient,
    port: int,
    experiments: int,
    bot_ids: list[int],
    pair: list[subprocess.Popen[bytes]],
    first_api: subprocess.Popen[bytes],
    logs: list[Path],
    *,
    kill: bool,
) -> Outcome:
    spec = {"host": "127.0.0.1", "port": port, "interval_s": INTERVAL_S, "count": PROBES}
    started = time.monotonic()
    created = await api.post("/api/v1/experiments?start=true", json=[spec] * experiments)
    created.raise_for_status()
    ids = [item["id"] for item in created.json()["data"]]

    async def all_spread() -> bool:
        held = [key for jobs in (await workers(api)).values() for key in jobs]
        return len(held) == experiments + len(bot_ids)

    await until(all_spread, timeout_s=120)
    back_s = None
    if kill:
        await asyncio.sleep(1.0)
        killed = time.monotonic()
        first_api.send_signal(signal.SIGKILL)
        pair[0].send_signal(signal.SIGKILL)
        high = {bot: max(found, default=-1) for bot, found in numbers(logs).items()}

        async def bots_went_on() -> bool:
            now = numbers(logs)
            return all(max(now.get(b, [-1])) >= high.get(b, -1) + 2 for b in bot_ids)

        await until(bots_went_on, timeout_s=120)
        back_s = time.monotonic() - killed

    async def every_experiment_ended() -> bool:
        page = (await api.get("/api/v1/experiments", params={"limit": 1000})).json()
        return all(e["state"] == "completed" for e in page["data"])

    await until(every_experiment_ended, timeout_s=300)
    finished_s = time.monotonic() - started
    exact = sum([await _exact(api, experiment_id) for experiment_id in ids])
    printed = numbers(logs)
    on = sum(1 for b in bot_ids if (n := printed.get(b)) and set(n) == set(range(max(n) + 1)))
    return Outcome(finished_s, exact, on, back_s)


async def _exact(api: httpx.AsyncClient, experiment_id: int) -> int:
    rows: list[dict[str, Any]] = (
        await api.get(f"/api/v1/experiments/{experiment_id}/results", params={"limit": 1000})
    ).json()["data"]
    return int(sorted(row["seq"] for row in rows) == list(range(PROBES)))


def report(reference: Outcome, killed: Outcome, experiments: int, bots: int) -> None:
    table = Table(
        title=f"{experiments} experiments ({PROBES} probes), {bots} bots, 2 API + 2 workers"
    )
    for column in (
        "run",
        "every experiment done",
        "exact experiments",
        "bots, no gap",
        "bots back",
    ):
        table.add_column(column)
    for name, outcome in (("nothing killed", reference), ("API + worker SIGKILL", killed)):
        back = "-" if outcome.bots_back_s is None else f"{outcome.bots_back_s:.1f} s"
        table.add_row(
            name,
            f"{outcome.finished_s:.1f} s",
            f"{outcome.exact}/{experiments}",
            f"{outcome.bots_on}/{bots}",
            back,
        )
    console = Console()
    console.print(table)
    console.print(
        f"the kills cost {killed.finished_s / reference.finished_s:.2f}x the time to finish"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument("--bots", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reference = asyncio.run(scenario(folder, args.experiments, args.bots, kill=False))
        killed = asyncio.run(scenario(folder, args.experiments, args.bots, kill=True))
    report(reference, killed, args.experiments, args.bots)
    for outcome in (reference, killed):
        if (outcome.exact, outcome.bots_on) != (args.experiments, args.bots):
            raise SystemExit("an experiment was not exact or a bot has a gap: see above")


if __name__ == "__main__":
    main()
