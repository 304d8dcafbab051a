"""2,000 bots on SQLite through SIGKILL and a restart: every bot continues, none skips.

(100,000 in ``bench/bots_restart.py``.)
"""

from __future__ import annotations

import re
import signal
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from harness import latlab_serve, serve_log, wait_for
from latlab.storage import JobState, open_store

# Reduced scale: under coverage's tracing 10,000 missed their first checkpoint on a busy
# 2-core machine; bench/bots_restart.py runs the full scale.
BOTS = 2_000
ENV = {"LATLAB_BOTS_TICK_S": "1.0"}
LINE = re.compile(rb"bot (\d+): (-?\d+)")


async def create_running_bots(db: Path) -> None:
    """Bots left running by an earlier process that never checkpointed them."""
    store = await open_store(f"sqlite+aiosqlite:///{db}")
    try:
        specs = [{"start_number": n * 10} for n in range(BOTS)]
        await store.create_jobs("bot", specs, state=JobState.RUNNING)
    finally:
        await store.close()


def printed(log: Path) -> dict[int, list[int]]:
    numbers: dict[int, list[int]] = defaultdict(list)
    for bot, number in LINE.findall(log.read_bytes()):
        numbers[int(bot)].append(int(number))
    return numbers


async def until_every_bot_checkpointed(db: Path) -> None:
    """The restart guarantee (at most one repeat) holds from a bot's first stored checkpoint."""
    store = await open_store(f"sqlite+aiosqlite:///{db}")

    async def stored() -> bool:
        page = await store.list_jobs("bot")
        return all("number" in job.progress for job in page.items)

    try:
        await wait_for(stored, timeout_s=90, what="every bot's first checkpoint")
    finally:
        await store.close()


async def until_every_bot_printed(log: Path, times: int) -> dict[int, list[int]]:
    async def done() -> bool:
        counts = printed(log)
        return len(counts) == BOTS and all(len(n) >= times for n in counts.values())

    await wait_for(done, timeout_s=90, what=f"every bot to print {times} numbers")
    return printed(log)


@pytest.mark.timeout(240)
async def test_sigkill_with_two_thousand_bots_then_restart_leaves_no_gap(tmp_path: Path) -> None:
    db = tmp_path / "latlab.db"
    await create_running_bots(db)
    with latlab_serve(db, "--no-targets", env=ENV) as (process, url):
        await until_every_bot_checkpointed(db)
        await until_every_bot_printed(serve_log(db, url), 3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    before = printed(serve_log(db, url))
    with latlab_serve(db, "--no-targets", env=ENV) as (_, url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            active = (await api.get("/active_bots")).json()["active_bots"]
        after = await until_every_bot_printed(serve_log(db, url), 2)
    assert len(active) == BOTS
    for bot, numbers in before.items():
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        resumed = after[bot]
        assert resumed[0] in (numbers[-1], numbers[-1] + 1), bot  # at most one repeat, no gap
        assert resumed == list(range(resumed[0], resumed[0] + len(resumed)))
