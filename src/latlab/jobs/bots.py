"""``BotFleet``: starts, stops, resumes and checkpoints this process's bots."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from latlab.coordination import Coordinator
from latlab.jobs.fleet import TickScheduler
from latlab.jobs.kinds.bot import KIND, BotSpec, heartbeat_key, last_printed
from latlab.jobs.state import Action, InvalidTransition
from latlab.storage import JobRecord, JobState, StateConflict, Store
from latlab.storage.records import ProgressUpdate
from latlab.storage.writer import BatchWriter

log = logging.getLogger("latlab.bots")
HEARTBEAT_EVERY_S = 0.1


class BotFleet:
    """The bots this process runs. The store holds every bot; Redis (if any) who runs which."""

    def __init__(
        self,
        store: Store,
        writer: BatchWriter,
        coordinator: Coordinator,
        *,
        tick_s: float = 1.0,
        log_ticks: bool = True,
    ) -> None:
        self._store = store
        self._writer = writer
        self._coordinator = coordinator
        self.scheduler = TickScheduler(tick_s, log_ticks=log_ticks)
        # An integer offset keeps grid times integers in epoch ms too.
        self._epoch_offset_ms = round(time.time() * 1000 - time.monotonic() * 1000)
        self._tasks: list[asyncio.Task[None]] = []
        self._written_ms = 0

    @property
    def tick_ms(self) -> int:
        return self.scheduler.tick_ms

    async def start(self) -> None:
        await self._adopt()
        for name, work in (
            ("ticks", self.scheduler.run()),
            ("checkpoints", self._checkpoint_loop()),
            ("stops", self._stop_listener()),
        ):
            self._tasks.append(asyncio.create_task(work, name=f"latlab-bots-{name}"))

    async def shutdown(self) -> None:
        """Stop ticking; bots stay running in the store and resume with the next process."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._write_heartbeat()
        await self._coordinator.close()

    async def create(self, spec: BotSpec) -> JobRecord:
        job = await self._store.create_job(KIND, spec.model_dump())
        job = await self._store.set_state(KIND, job.id, JobState.RUNNING, expected={job.state})
        await self._run_here(job.id, spec.start_number)
        await self._coordinator.joined([job.id])
        return await self._store.get_job(KIND, job.id)

    async def stop(self, bot_id: int) -> JobRecord:
        """Stop a running bot (wherever it runs); its last number and end time are kept."""
        job = await self._store.get_job(KIND, bot_id)
        if job.state is not JobState.RUNNING:
            raise InvalidTransition(KIND, bot_id, job.state, Action.STOP)
        last = await self.last_number(job)
        self.scheduler.remove(bot_id)
        try:
            await self._store.set_state(KIND, bot_id, JobState.STOPPED, expected={job.state})
        except StateConflict as conflict:
            raise InvalidTransition(KIND, bot_id, conflict.job.state, Action.STOP) from conflict
        ended = {"last_number": last, "ended_at": datetime.now(UTC).isoformat()}
        await self._writer.write(progress=[ProgressUpdate(KIND, bot_id, ended)])
        await self._coordinator.left(bot_id)
        return await self._store.get_job(KIND, bot_id)

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
        now_ms = round(time.time() * 1000)
        return last_printed(job.progress, now_ms, self.tick_ms)

    async def active_ids(self) -> list[int]:
        shared = await self._coordinator.active_ids()
        if shared is not None:
            return shared
        page = await self._store.list_jobs(KIND, states={JobState.RUNNING})
        return sorted((job.id for job in page.items), reverse=True)

    async def _run_here(self, bot_id: int, number: int) -> None:
        at_ms = self.scheduler.add(bot_id, number) + self._epoch_offset_ms
        checkpoint = {"number": number, "at_ms": at_ms, "fleet": self._coordinator.fleet_id}
        await self._writer.write(progress=[ProgressUpdate(KIND, bot_id, checkpoint)])

    async def _adopt(self) -> None:
        running: dict[int, JobRecord] = {}

        async def owners() -> dict[int, str]:
            page = await self._store.list_jobs(KIND, states={JobState.RUNNING})
            running.update({job.id: job for job in page.items})
            return {job.id: str(job.progress.get("fleet", "local")) for job in page.items}

        adopted = await self._coordinator.adopt(owners)
        heartbeats: dict[str, int | None] = {}
        for bot_id in adopted:
            job = running[bot_id]
            fleet = str(job.progress.get("fleet", "local"))
            if fleet not in heartbeats:
                value = await self._store.get_value(heartbeat_key(fleet))
                heartbeats[fleet] = None if value is None else int(value["at_ms"])
            await self._resume(job, heartbeats[fleet])
        if adopted:
            await self._coordinator.joined(adopted)
            log.info("resumed %d bot(s)", len(adopted))

    async def _resume(self, job: JobRecord, heartbeat_ms: int | None) -> None:
        if "number" in job.progress:
            number = last_printed(job.progress, heartbeat_ms, self.tick_ms) + 1
        else:  # started but never checkpointed: begin where the user asked
            number = BotSpec.model_validate(job.spec).start_number
        await self._run_here(job.id, number)

    async def _checkpoint_loop(self) -> None:
        keep_alive_every = max(1, round(self._coordinator.lease_s / 3 / HEARTBEAT_EVERY_S))
        turns = 0
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_S)
            await self._write_heartbeat()
            turns += 1
            if turns % keep_alive_every == 0:
                await self._coordinator.keep_alive()
                if await self._coordinator.orphans_exist():
                    await self._adopt()

    async def _write_heartbeat(self) -> None:
        done_ms = self.scheduler.done_ms
        if done_ms and done_ms != self._written_ms:
            value = {"at_ms": done_ms + self._epoch_offset_ms}
            await self._store.set_value(heartbeat_key(self._coordinator.fleet_id), value)
            self._written_ms = done_ms

    async def _stop_listener(self) -> None:
        while (bot_id := await self._coordinator.next_stop()) is not None:
            self.scheduler.remove(bot_id)
