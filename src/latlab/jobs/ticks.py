"""One scheduler ticks every bot of this process: the bot kind's way of running many jobs.

Bots are grouped by phase into buckets on a 1 ms grid; the scheduler sleeps until the next
bucket is due and ticks it. A tick is O(1) for a bucket (each bot's number follows from how often
its bucket fired) plus one log line per bot when per-tick logging is on.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from latlab.measure.stats import LatencyHistogram

log = logging.getLogger("latlab.bots")


@dataclass(slots=True)
class Bot:
    id: int
    next_number: int  # printed at the bucket firing numbered first_firing
    first_firing: int
    bucket: Bucket

    def last_printed(self) -> int:
        return self.next_number - 1 + max(0, self.bucket.fired - self.first_firing)


@dataclass(slots=True)
class Bucket:
    phase_ms: int
    due_ms: int  # next firing, monotonic ms on the grid
    fired: int = 0
    bots: dict[int, Bot] = field(default_factory=dict)


class TickScheduler:
    """Buckets of bots and the loop that fires them, drift-free."""

    def __init__(
        self, tick_s: float, *, log_ticks: bool, may_tick: Callable[[], bool] = lambda: True
    ) -> None:
        self.tick_ms = max(1, round(tick_s * 1000))
        self.log_ticks = log_ticks
        # False once this process may no longer own its bots (a stale lease): never tick then.
        self.may_tick = may_tick
        self.bots: dict[int, Bot] = {}
        self._buckets: dict[int, Bucket] = {}
        self._heap: list[tuple[int, int]] = []
        self._added = asyncio.Event()
        self.done_ms = 0  # every firing due up to here has run
        self.lateness_ms = LatencyHistogram()
        self.behind_ticks = 0

    def add(self, bot_id: int, number: int) -> int:
        """Print ``number`` now, then one more every tick. Return the grid time of ``number``."""
        self.remove(bot_id)  # a bot is in one bucket only, or it would tick twice
        if self.log_ticks:
            log.info("bot %d: %d", bot_id, number)
        now_ms = math.ceil(time.monotonic() * 1000)
        due_ms = now_ms + self.tick_ms
        bucket = self._buckets.get(due_ms % self.tick_ms)
        if bucket is None:
            bucket = self._buckets[due_ms % self.tick_ms] = Bucket(due_ms % self.tick_ms, due_ms)
            heapq.heappush(self._heap, (due_ms, bucket.phase_ms))
            self._added.set()
        # The bucket may still fire once before due_ms (within this millisecond): skip that one.
        first = bucket.fired + (1 if bucket.due_ms < due_ms else 0)
        self.bots[bot_id] = bucket.bots[bot_id] = Bot(bot_id, number + 1, first, bucket)
        return now_ms

    def remove(self, bot_id: int) -> Bot | None:
        bot = self.bots.pop(bot_id, None)
        if bot is not None:
            del bot.bucket.bots[bot_id]
        return bot

    async def run(self) -> None:
        while True:
            bucket = self._next_bucket()
            if bucket is None:
                await self._added.wait()
                self._added.clear()
                continue
            delay_s = bucket.due_ms / 1000 - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
                continue  # re-check: timers may fire early, buckets may have changed
            if not self.may_tick():
                # The owner is about to halt every bot; until then print nothing.
                await asyncio.sleep(self.tick_ms / 1000)
                continue
            self._fire(bucket)

    def _next_bucket(self) -> Bucket | None:
        while self._heap:
            due_ms, phase_ms = self._heap[0]
            bucket = self._buckets.get(phase_ms)
            if bucket is not None and bucket.due_ms == due_ms:
                if bucket.bots:
                    return bucket
                del self._buckets[phase_ms]  # nobody left in it
            heapq.heappop(self._heap)
        return None

    def _fire(self, bucket: Bucket) -> None:
        now_ms = time.monotonic() * 1000
        self.lateness_ms.record(now_ms - bucket.due_ms)
        # A loop stalled for over a tick prints the numbers it missed now, late, rather than
        # skip them: a counter never jumps, and after the burst it is back on the clock.
        missed = int((now_ms - bucket.due_ms) // self.tick_ms)
        if self.log_ticks:
            for firing in range(bucket.fired, bucket.fired + 1 + missed):
                self._print(bucket, firing)
        self.done_ms = max(self.done_ms, bucket.due_ms + self.tick_ms * missed)
        self.behind_ticks += missed
        bucket.fired += 1 + missed
        bucket.due_ms += self.tick_ms * (1 + missed)
        heapq.heapreplace(self._heap, (bucket.due_ms, bucket.phase_ms))

    @staticmethod
    def _print(bucket: Bucket, firing: int) -> None:
        for bot in bucket.bots.values():
            if firing >= bot.first_firing:
                log.info("bot %d: %d", bot.id, bot.next_number + firing - bot.first_firing)
