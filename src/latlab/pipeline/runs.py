"""Pipeline runs recorded in LatLab's SQL store, for ``/api/v1/pipeline-runs``.

The client records the start and the end of each call; the writer tallies the result lines
it writes per run in memory (a dict bump per line) and adds them to the store at most every
``FLUSH_EVERY_S``, and once more on close. Recording never stops the pipeline: a failure is
logged and the pipeline goes on; a client call waits at most ``RECORD_WAIT_S`` for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import TYPE_CHECKING, Any

from latlab.measure.stats import LatencyHistogram
from latlab.pipeline.receipts import Receipt
from latlab.pipeline.sender import SendPlan, SendResult
from latlab.storage.registry import normalize_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from latlab.storage.sql.pipeline_runs import PipelineRuns

logger = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.5
RECORD_WAIT_S = 2.0  # the longest a client call waits for its start or end to be stored
_MICROSECOND = timedelta(microseconds=1)
_SQL_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")


@dataclass
class _Tally:
    """One run's result lines since the last flush."""

    first_at: datetime  # the first line's write time: the run's start if none is stored
    lines: int = 0
    e2e_us: Counter[int] = field(default_factory=Counter)  # latency in µs -> lines

    def histogram(self) -> LatencyHistogram:
        histogram = LatencyHistogram()
        histogram.record_counts(self.e2e_us)
        return histogram


class RunRecorder:
    """Records runs in ``runs``; with None (no SQL store) every method does nothing."""

    def __init__(self, runs: PipelineRuns | None, engine: AsyncEngine | None = None) -> None:
        self._runs = runs
        self._engine = engine  # disposed on close
        self._tallies: dict[str, _Tally] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._last_flush = 0.0
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, storage_url: str) -> RunRecorder:
        """A recorder on the store ``storage_url`` names, if it is SQL (migrated here);
        a disabled one otherwise, or if the store cannot be opened (logged)."""
        try:
            url = normalize_url(storage_url)
        except ValueError:
            return cls(None)
        if url.partition("://")[0] not in _SQL_SCHEMES:
            return cls(None)
        from latlab.storage.sql.engine import create_engine, migrate
        from latlab.storage.sql.pipeline_runs import PipelineRuns

        engine: AsyncEngine | None = None
        try:
            engine = create_engine(url)
            await migrate(engine)
        except Exception:
            logger.warning("pipeline runs are not recorded: the store failed", exc_info=True)
            if engine is not None:
                await engine.dispose()
            return cls(None)
        return cls(PipelineRuns(engine), engine)

    @property
    def enabled(self) -> bool:
        return self._runs is not None and not self._closing.is_set()

    # --- the client's side ---

    async def started(self, plan: SendPlan) -> None:
        if self._runs is not None and self.enabled:
            now = datetime.now(UTC)
            work = self._runs.start(plan.run_id, plan.requests, plan.connections, now)
            await self._record(work, f"the start of run {plan.run_id}")

    async def finished(self, result: SendResult) -> None:
        if self._runs is not None and self.enabled:
            payload = result.ack.to_payload() if result.ack.count else None
            now = datetime.now(UTC)
            work = self._runs.finish(
                result.run_id, result.sent, result.acked, result.errors, payload, now
            )
            await self._record(work, f"the end of run {result.run_id}")

    async def _record(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``work`` in a task (never cancelled half-way) and wait for it a while."""
        task = asyncio.get_running_loop().create_task(_logged(work, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.wait({task}, timeout=RECORD_WAIT_S)

    # --- the writer's side ---

    def written(self, receipts: Sequence[Receipt], write_time: datetime) -> None:
        """The writer's ``written`` callback: tallied here, stored in the background."""
        if not self.enabled:
            return
        try:
            self._tally(receipts, write_time)
        except Exception:  # the writer must go on whatever happens here
            logger.exception("tallying written results for pipeline runs failed")
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_while_pending())

    def _tally(self, receipts: Sequence[Receipt], write_time: datetime) -> None:
        for receipt in receipts:
            if receipt.run_id is None:
                continue  # not sent by a client: no run
            tally = self._tallies.get(receipt.run_id)
            if tally is None:
                tally = self._tallies[receipt.run_id] = _Tally(write_time)
            tally.lines += 1
            if receipt.error is None:  # an ERROR line has no write time to measure
                tally.e2e_us[max(0, (write_time - receipt.receive_time) // _MICROSECOND)] += 1

    async def _flush_while_pending(self) -> None:
        while self._tallies and not self._closing.is_set():
            wait_s = self._last_flush + FLUSH_EVERY_S - monotonic()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._closing.wait()  # close flushes what is left itself
                if self._closing.is_set():
                    return
            await self._flush()

    async def _flush(self) -> None:
        tallies, self._tallies = self._tallies, {}
        if self._runs is None or not tallies:
            return
        self._last_flush = monotonic()
        added = {run_id: (tally.lines, tally.histogram()) for run_id, tally in tallies.items()}
        first_at = min(tally.first_at for tally in tallies.values())
        await _logged(self._runs.add_written(added, first_at), "the written results")

    async def close(self) -> None:
        """Store what is tallied, wait for the records under way, release the store."""
        if self._closing.is_set():
            return
        self._closing.set()
        if self._flusher is not None:
            await self._flusher
        await self._flush()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._engine is not None:
            await self._engine.dispose()


async def _logged(work: Coroutine[Any, Any, None], what: str) -> None:
    try:
        await work
    except Exception:
        logger.warning("recording %s for pipeline runs failed", what, exc_info=True)
