"""Bots: counters that print ``start_number``, ``start_number + 1``, … once a tick.

Every bot of a process runs on one :class:`~latlab.jobs.ticks.TickScheduler`. A running bot's
checkpoint is ``{"number", "at_ms", "fleet"}``: it printed ``number`` at the grid time
``at_ms`` (epoch ms) and then one more every tick. Its owner records one heartbeat, "every tick
due up to here is done", so one small write per heartbeat covers every bot, and the last
printed number follows from the two: see :func:`last_printed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from latlab.jobs.kinds.spec_checks import location_field
from latlab.jobs.runner import KindRunner, RunContext, Service, Started
from latlab.jobs.supervise import until_stored
from latlab.jobs.ticks import TickScheduler
from latlab.storage import JobRecord
from latlab.storage.records import ProgressUpdate

KIND = "bot"
# Integers a JSON number keeps exactly everywhere (JavaScript, BSON int64 after a long run).
NUMBER_LIMIT = 2**53
HEARTBEAT_EVERY_S = 0.1
log = logging.getLogger("latlab.bots")


class BotSpec(BaseModel):
    """What a bot counts from. Strict: "12", 12.5 and true are not numbers to start from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_number: Annotated[
        StrictInt, Field(ge=-NUMBER_LIMIT, le=NUMBER_LIMIT, description="First number printed.")
    ] = 0
    location: str | None = location_field("the bot")


def heartbeat_key(owner_id: str) -> str:
    return f"bots.heartbeat.{owner_id}"


def last_printed(progress: Mapping[str, Any], heartbeat_ms: int | None, tick_ms: int) -> int:
    """The last number a bot printed, from its checkpoint and its owner's heartbeat.

    The first number is printed before the bot's start is answered, so it always counts.
    A tick that ran after the last heartbeat reached the store is counted as not run: after
    a crash that number is printed again (at least once, never a gap).
    """
    number = int(progress["number"])
    if heartbeat_ms is None:
        return number
    return number + max(0, (heartbeat_ms - int(progress["at_ms"])) // tick_ms)


class BotRunner(KindRunner):
    """Runs this process's bots on one tick scheduler and keeps their owner's heartbeat."""

    kind = KIND
    needs_claim = False  # the first checkpoint names the owner

    def __init__(self, tick_s: float = 1.0, *, log_ticks: bool = True) -> None:
        self.scheduler = TickScheduler(tick_s, log_ticks=log_ticks)
        # An integer offset keeps grid times integers in epoch ms too.
        self._epoch_offset_ms = round(time.time() * 1000 - time.monotonic() * 1000)
        self._heartbeats: dict[str, asyncio.Future[int | None]] = {}
        self._halted_at: dict[int, int] = {}  # last number of bots halted here, until stopped()
        self._written: tuple[str, int] = ("", 0)

    @property
    def tick_ms(self) -> int:
        return self.scheduler.tick_ms

    def services(self, ctx: RunContext) -> Sequence[Service]:
        self.scheduler.may_tick = ctx.coordinator.lease_fresh
        return (
            Service("bot ticks", self.scheduler.run),
            Service("bot heartbeat", lambda: self._heartbeat_loop(ctx)),
        )

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        number = await self._next_number(job, ctx)
        at_ms = self.scheduler.add(job.id, number) + self._epoch_offset_ms
        started()
        try:
            owner = ctx.coordinator.owner_id
            checkpoint = {"number": number, "at_ms": at_ms, "fleet": owner, "handed_from": None}
            update = ProgressUpdate(KIND, job.id, checkpoint)
            await until_stored(f"bot {job.id} checkpoint", lambda: ctx.writer.write([], [update]))
            await asyncio.Future()  # a bot runs until it is halted
        finally:
            bot = self.scheduler.remove(job.id)
            if bot is not None:
                self._halted_at[job.id] = bot.last_printed()

    async def stopped(
        self, job: JobRecord, ctx: RunContext, *, ran_here: bool
    ) -> Mapping[str, Any]:
        # What a bot printed here before an earlier halt (a lost lease) is stale by now.
        halted_at = self._halted_at.pop(job.id, None)
        last = halted_at if ran_here and halted_at is not None else await self.last_number(job)
        return {"last_number": last, "ended_at": datetime.now(UTC).isoformat()}

    async def close(self, ctx: RunContext) -> None:
        reads = list(self._heartbeats.values())
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        await self._write_heartbeat(ctx)

    async def last_number(self, job: JobRecord) -> int | None:
        """The last number the bot printed; None for a bot that never started."""
        if "last_number" in job.progress:
            return int(job.progress["last_number"])
        bot = self.scheduler.bots.get(job.id)
        if bot is not None:
            return bot.last_printed()
        if "number" not in job.progress:
            return None
        # Run by another live process: it prints on schedule, so count ticks up to now.
        return last_printed(job.progress, round(time.time() * 1000), self.tick_ms)

    async def _next_number(self, job: JobRecord, ctx: RunContext) -> int:
        if "number" not in job.progress:  # started but never checkpointed: as the user asked
            return BotSpec.model_validate(job.spec).start_number
        heartbeat_ms = await self._heartbeat_of(printed_by(job.progress, ctx), ctx)
        return last_printed(job.progress, heartbeat_ms, self.tick_ms) + 1

    async def _heartbeat_of(self, owner_id: str, ctx: RunContext) -> int | None:
        """The last heartbeat of a gone owner, read once for all of its bots."""
        found = self._heartbeats.get(owner_id)
        if found is None or owner_id == ctx.coordinator.owner_id:
            read = _read_heartbeat(owner_id, ctx)
            found = self._heartbeats[owner_id] = asyncio.ensure_future(read)
        return await asyncio.shield(found)

    async def _heartbeat_loop(self, ctx: RunContext) -> None:
        # At least twice a tick: a heartbeat lagging by more than a tick would make a restart
        # print more than one number again.
        every_s = min(HEARTBEAT_EVERY_S, self.tick_ms / 2000)
        while True:
            await asyncio.sleep(every_s)
            await self._write_heartbeat(ctx)

    async def _write_heartbeat(self, ctx: RunContext) -> None:
        done_ms = self.scheduler.done_ms
        owner_id = ctx.coordinator.owner_id
        if done_ms and (owner_id, done_ms) != self._written:
            value = {"at_ms": done_ms + self._epoch_offset_ms}
            await ctx.store.set_value(heartbeat_key(owner_id), value)
            self._written = (owner_id, done_ms)


def printed_by(progress: Mapping[str, Any], ctx: RunContext) -> str:
    """The owner whose heartbeat counts the bot's printed numbers: the one its checkpoint
    names, or, if it was just claimed here or released for a new start (``handed_from``),
    the one before."""
    owner = progress.get("fleet", "local")
    if owner in (None, ctx.coordinator.owner_id) and progress.get("handed_from"):
        owner = progress["handed_from"]
    return str(owner)


async def _read_heartbeat(owner_id: str, ctx: RunContext) -> int | None:
    value = await until_stored(
        "bot heartbeat read", lambda: ctx.store.get_value(heartbeat_key(owner_id))
    )
    return None if value is None else int(value["at_ms"])
