"""Restart with many bots: how soon does the API answer, and when is every bot running again?

A first ``latlab serve`` adopts N running bots (default 100,000) from a SQLite file and
checkpoints them; it is SIGKILLed. A second one starts on the same file. Reported, against
the same server started on an empty store (the reference): seconds until the port answers
``/healthz``, until ``/active_bots`` lists all N, and until every bot has checkpointed under
its new owner (all adopted). Goal: the API answers within 2 s of start-up.

    python bench/bots_restart.py [--bots 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from _targets import free_port
from latlab.storage import JobState, Store, open_store

OWNERS_POLL_S = 0.5


@contextmanager
def serve(db: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, float]]:
    port = free_port()
    env = {
        **os.environ,
        "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{db}",
        "LATLAB_BOTS_LOG_TICKS": "false",
        "LATLAB_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "latlab", "serve", "--no-targets", "--port", str(port)]
    began = time.perf_counter()
    child = subprocess.Popen(command, env=env)
    try:
        yield child, f"http://127.0.0.1:{port}", began
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait(timeout=60)


async def seconds_until(
    began: float, check: Callable[[], Awaitable[bool]], what: str, poll_s: float = 0.02
) -> float:
    deadline = time.monotonic() + 600
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(poll_s)
    return time.perf_counter() - began


async def answering(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def owners(store: Store) -> set[str]:
    page = await store.list_jobs("bot", states={JobState.RUNNING})
    return {str(job.progress.get("fleet")) for job in page.items}


@asynccontextmanager
async def opened(db: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    try:
        yield store
    finally:
        await store.close()


async def start_and_time(db: Path, bots: int, old_owners: set[str]) -> tuple[float, ...]:
    with serve(db) as (_, url, began):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            port_s = await seconds_until(began, lambda: answering(client), "the port")

            async def listed() -> bool:
                return len((await client.get("/active_bots")).json()["active_bots"]) == bots

            listed_s = await seconds_until(began, listed, "every bot listed")

            async with opened(db) as store:

                async def adopted() -> bool:
                    found = await owners(store)
                    return bots == 0 or (len(found) == 1 and not found & old_owners)

                # Each look loads every bot from the server's own file: not too often.
                adopted_s = await seconds_until(began, adopted, "every bot adopted", OWNERS_POLL_S)
    return port_s, listed_s, adopted_s


async def first_life(db: Path, bots: int) -> set[str]:
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    for first in range(0, bots, 10_000):
        specs = [{"start_number": n} for n in range(first, min(first + 10_000, bots))]
        await store.create_jobs("bot", specs, state=JobState.RUNNING)
    await store.close()
    with serve(db) as (child, url, began):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await seconds_until(began, lambda: answering(client), "the port")

        async with opened(db) as store:

            async def checkpointed() -> bool:
                found = await owners(store)
                return len(found) == 1 and "None" not in found

            await seconds_until(began, checkpointed, "every first checkpoint", OWNERS_POLL_S)
            child.send_signal(signal.SIGKILL)
            child.wait()
            return await owners(store)


async def run(bots: int, folder: Path) -> None:
    reference = await start_and_time(folder / "empty.db", 0, set())
    db = folder / "bots.db"
    old = await first_life(db, bots)
    measured = await start_and_time(db, bots, old)
    table = Table(title=f"restart after SIGKILL with {bots:,} running bots (SQLite)")
    for column in ("", "port answers s", "all listed s", "all adopted s"):
        table.add_column(column, justify="right")
    table.add_row("empty store (reference)", *(f"{s:.2f}" for s in reference))
    table.add_row(f"{bots:,} bots", *(f"{s:.2f}" for s in measured))
    table.add_row("ratio", f"{measured[0] / reference[0]:.2f}x", "", "")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.bots, Path(tmp)))


if __name__ == "__main__":
    main()
