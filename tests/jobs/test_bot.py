"""Bots on one scheduler: consecutive numbers on a drift-free grid, checkpoints, resume."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from harness import running_engine
from latlab.coordination import LocalCoordinator
from latlab.jobs.kinds.bot import KIND, BotRunner, BotSpec, heartbeat_key, last_printed
from latlab.jobs.manager import JobManager
from latlab.jobs.state import Action
from latlab.storage import JobRecord, JobState, Store
from latlab.storage.memory import MemoryStore

TICK_S = 0.05
LINE = re.compile(r"bot (\d+): (-?\d+)")


class Fleet:
    """The bot kind on a running engine, as the API drives it."""

    def __init__(self, manager: JobManager, runner: BotRunner, owner_id: str) -> None:
        self.manager = manager
        self.runner = runner
        self.scheduler = runner.scheduler
        self.owner_id = owner_id

    async def create(self, spec: BotSpec) -> JobRecord:
        return await self.manager.create(KIND, spec.model_dump(), start=True)

    async def stop(self, bot_id: int) -> JobRecord:
        return await self.manager.act(KIND, bot_id, Action.STOP)


@asynccontextmanager
async def fleet_on(store: Store, *, log_ticks: bool = True) -> AsyncIterator[Fleet]:
    runner = BotRunner(TICK_S, log_ticks=log_ticks)
    coordinator = LocalCoordinator()
    async with running_engine(store, [runner], coordinator) as manager:
        yield Fleet(manager, runner, coordinator.owner_id)


def printed(caplog: pytest.LogCaptureFixture, bot_id: int) -> list[tuple[int, float]]:
    lines = []
    for record in caplog.records:
        match = LINE.fullmatch(record.getMessage())
        if record.name == "latlab.bots" and match and int(match[1]) == bot_id:
            lines.append((int(match[2]), record.created))
    return lines


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.usefixtures("frozen_heap")
async def test_numbers_are_consecutive_and_one_per_tick(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "latlab.bots")
    async with fleet_on(MemoryStore()) as fleet:
        bot = await fleet.create(BotSpec(start_number=40))
        await until(lambda: len(printed(caplog, bot.id)) >= 8)
    lines = printed(caplog, bot.id)
    assert [n for n, _ in lines] == list(range(40, 40 + len(lines)))
    first_s = lines[0][1]
    for k, (_, at_s) in enumerate(lines[1:], start=1):
        lateness_s = at_s - (first_s + k * TICK_S)
        assert -0.002 <= lateness_s <= 0.03, (k, lateness_s)  # the grid is ms, never early


async def test_bots_started_together_share_a_bucket_and_stop_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "latlab.bots")
    async with fleet_on(MemoryStore()) as fleet:
        a, b = [await fleet.create(BotSpec(start_number=n)) for n in (0, 100)]
        await until(lambda: len(printed(caplog, b.id)) >= 3)
        stopped = await fleet.stop(a.id)
        seen = len(printed(caplog, a.id))
        await until(lambda: len(printed(caplog, b.id)) >= 6)
    assert len(printed(caplog, a.id)) == seen
    assert stopped.progress["last_number"] == printed(caplog, a.id)[-1][0]
    assert stopped.state is JobState.STOPPED


async def test_logging_off_still_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "latlab.bots")
    store = MemoryStore()
    async with fleet_on(store, log_ticks=False) as fleet:
        bot = await fleet.create(BotSpec(start_number=5))
        await until(lambda: fleet.scheduler.bots[bot.id].last_printed() >= 8)
        assert (await fleet.runner.last_number(await store.get_job(KIND, bot.id)) or 0) >= 8
    assert printed(caplog, bot.id) == []


async def test_a_stalled_loop_prints_the_missed_numbers_late_never_a_gap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "latlab.bots")
    async with fleet_on(MemoryStore()) as fleet:
        bot = await fleet.create(BotSpec())
        await until(lambda: fleet.scheduler.bots[bot.id].bucket.fired >= 1)
        time.sleep(TICK_S * 4)  # noqa: ASYNC251 (a stall of four ticks, on purpose)
        fired = fleet.scheduler.bots[bot.id].bucket.fired
        await until(lambda: fleet.scheduler.bots[bot.id].bucket.fired > fired)
        assert fleet.scheduler.behind_ticks >= 2
    numbers = [n for n, _ in printed(caplog, bot.id)]
    assert numbers == list(range(len(numbers)))
    assert len(numbers) >= fired + 1  # the stalled ticks were printed, late


async def test_graceful_restart_continues_with_the_next_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "latlab.bots")
    store = MemoryStore()
    async with fleet_on(store) as fleet:
        bot = await fleet.create(BotSpec(start_number=3))
        await until(lambda: len(printed(caplog, bot.id)) >= 4)
    before = printed(caplog, bot.id)
    assert (await store.get_job(KIND, bot.id)).state is JobState.RUNNING
    assert await store.get_value(heartbeat_key(fleet.owner_id)) is not None
    async with fleet_on(store) as fleet:
        await until(lambda: len(printed(caplog, bot.id)) >= len(before) + 2)
    after = [n for n, _ in printed(caplog, bot.id)][len(before) :]
    assert after[0] == before[-1][0] + 1
    assert after == list(range(after[0], after[0] + len(after)))


def test_last_printed_follows_the_heartbeat() -> None:
    progress = {"number": 10, "at_ms": 1_000}
    assert last_printed(progress, None, 1000) == 10
    assert last_printed(progress, 500, 1000) == 10  # heartbeat older than the bot
    assert last_printed(progress, 1_999, 1000) == 10
    assert last_printed(progress, 2_000, 1000) == 11
    assert last_printed(progress, 9_000, 1000) == 18
