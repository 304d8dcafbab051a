"""The handler: takes receipts from the queue and "processes" each by waiting its delay,
many at once (at most ``concurrency``), then records the outcome for the writer.

At-least-once: work a dead handler held is handed out again (``tries`` one higher); past
``max_tries`` a receipt is finished as failed, so one poisonous request never blocks the
files. Stopping cancels the work in hand: it is redelivered, never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from prometheus_client.core import Metric

from latlab.pipeline.metrics import counter, gauge
from latlab.pipeline.queue.base import PipelineQueue
from latlab.pipeline.receipts import Receipt

logger = logging.getLogger(__name__)

CLAIM_WAIT_S = 1.0
FINISH_RETRY_S = (0.05, 0.2, 1.0)  # pauses between attempts to record an outcome


class Handler:
    def __init__(
        self, queue: PipelineQueue, *, concurrency: int, max_tries: int, lease_s: float = 30.0
    ) -> None:
        self._queue = queue
        self._concurrency = concurrency
        self._max_tries = max_tries
        self._lease_s = lease_s
        self._working: dict[asyncio.Task[None], int] = {}  # task -> the receipt it processes
        self._room = asyncio.Event()
        self.processed = 0
        self.failed = 0

    @property
    def in_flight(self) -> int:
        return len(self._working)

    def figures(self) -> Iterable[Metric]:
        yield counter("latlab_pipeline_processed", "Requests processed", self.processed)
        yield counter("latlab_pipeline_failed", "Requests failed for good (ERROR)", self.failed)
        yield gauge("latlab_pipeline_in_flight", "Requests being processed", self.in_flight)

    async def run(self) -> None:
        """Take and process work until cancelled; then cancel the work in hand."""
        heartbeat = asyncio.get_running_loop().create_task(self._keep_claims())
        try:
            while True:
                free = self._concurrency - len(self._working)
                if free <= 0:
                    self._room.clear()
                    await self._room.wait()
                    continue
                try:
                    claimed = await self._queue.claim(free, CLAIM_WAIT_S)
                except Exception:
                    logger.warning("handler: claiming work failed; again in 1 s", exc_info=True)
                    await asyncio.sleep(CLAIM_WAIT_S)
                    continue
                for receipt in claimed:
                    self._start(receipt)
        finally:
            heartbeat.cancel()
            for task in (heartbeat, *self._working):
                task.cancel()
            await asyncio.gather(heartbeat, *self._working, return_exceptions=True)

    async def _keep_claims(self) -> None:
        """Every third of the lease, tell the queue the work in hand is still being done:
        a delay longer than the lease is not taken over as if this handler had died."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self._queue.heartbeat(list(self._working.values()))
            except Exception:
                logger.warning("handler: heartbeat failed", exc_info=True)

    def _start(self, receipt: Receipt) -> None:
        task = asyncio.get_running_loop().create_task(self._process(receipt))
        self._working[task] = receipt.seq
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._working.pop(task, None)
        self._room.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("processing failed", exc_info=task.exception())

    async def _process(self, receipt: Receipt) -> None:
        if receipt.tries > self._max_tries:
            await self._finish(receipt, f"gave up after {self._max_tries} tries")
            return
        await asyncio.sleep(receipt.delay_s)
        await self._finish(receipt, None)

    async def _finish(self, receipt: Receipt, error: str | None) -> None:
        """Record the outcome, retrying a queue that fails for a moment."""
        for pause_s in (*FINISH_RETRY_S, None):
            try:
                await self._queue.finish(receipt.seq, error)
                break
            except Exception:
                if pause_s is None:
                    raise  # redelivered once this handler is restarted or its lease lapses
                logger.warning("recording receipt %d failed; retrying", receipt.seq)
                await asyncio.sleep(pause_s)
        if error is None:
            self.processed += 1
        else:
            self.failed += 1
