"""The handler: takes receipts from the queue and "processes" each by waiting its delay,
many at once (at most ``concurrency``), then records the outcome for the writer.

At-least-once: work a dead handler held is handed out again (``tries`` one higher); past
``max_tries`` a receipt is finished as failed, so one poisonous request never blocks the
files. Stopping cancels the work in hand: it is redelivered, never lost. A queue that fails
for a while (Redis restarting) is tried again until it answers; the outcomes of the work
done meanwhile are recorded then.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable

from prometheus_client.core import Metric

from latlab.pipeline.metrics import counter, gauge
from latlab.pipeline.outage import OutageLog
from latlab.pipeline.queue.base import PipelineQueue
from latlab.pipeline.receipts import Receipt

logger = logging.getLogger(__name__)

CLAIM_WAIT_S = 1.0
# After a claim that got less than it could take: a moment for more to come. Under load a
# claim then takes dozens of receipts instead of a few, each round trip and script call
# shared by all of them; a request waits this long at most before it is processed.
LINGER_S = 0.005


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
        self.outage = OutageLog(logger, "handler")
        self.processed = 0
        self.failed = 0

    @property
    def in_flight(self) -> int:
        return len(self._working)

    def figures(self) -> Iterable[Metric]:
        yield counter("latlab_pipeline_processed", "Requests processed", self.processed)
        yield counter("latlab_pipeline_failed", "Requests failed for good (ERROR)", self.failed)
        yield gauge("latlab_pipeline_in_flight", "Requests being processed", self.in_flight)
        yield counter(
            "latlab_pipeline_queue_failures", "Calls to the queue that failed", self.outage.failures
        )

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
                claim = functools.partial(self._queue.claim, free, CLAIM_WAIT_S)
                claimed = await self.outage.retry("claiming work", claim)
                for receipt in claimed:
                    self._start(receipt)
                if 0 < len(claimed) < free:
                    await asyncio.sleep(LINGER_S)
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
            beat = functools.partial(self._queue.heartbeat, list(self._working.values()))
            await self.outage.retry("keeping its claims", beat)

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
        """Record the outcome, however long the queue takes to answer again (stopped
        meanwhile, the receipt is redelivered: its outcome is recorded once in any case)."""
        finish = functools.partial(self._queue.finish, receipt.seq, error)
        await self.outage.retry("recording an outcome", finish)
        if error is None:
            self.processed += 1
        else:
            self.failed += 1
