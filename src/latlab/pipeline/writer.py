"""The writer: both files in receipt order, whatever order processing ends in.

It follows two feeds of the queue: receipts in order (each becomes a line of ``2.txt`` at
once) and outcomes as they are recorded. A finished result waits in ``_window`` until every
earlier receipt's line is in ``1.txt``; then the run of finished results at the head of the
window is written in one go. Positions come from the files (``files.py``), so a restart
goes on where the files end, and a receipt delivered twice is still one line.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import Metric

from latlab.pipeline.files import BATCH_FSYNC_S, AppendOnlyFile, Fsync
from latlab.pipeline.metrics import LatencyBuckets, counter, gauge
from latlab.pipeline.outage import OutageLog
from latlab.pipeline.queue.base import Outcome, PipelineQueue
from latlab.pipeline.receipts import (
    RECEIPTS_FILE,
    RECEIPTS_HEADER,
    RESULTS_FILE,
    RESULTS_HEADER,
    Receipt,
    receipt_line,
    result_line,
    utc_text,
)

logger = logging.getLogger(__name__)

READ_BATCH = 1000
WAIT_S = 1.0  # a feed's longest wait before it looks again (and sees a stop)
LINGER_S = 0.005  # after a short read: a moment for more, so reads under load are batches
FORGET_EVERY_S = 1.0  # how often the queue hears which receipts are written for good


class FilesMismatch(ValueError):
    """The out dir's files were written from another queue."""


Written = Callable[[list[Receipt], datetime], None]  # results just written, and when


class OrderedWriter:
    """Writes ``2.txt`` and ``1.txt`` in ``out_dir`` from ``queue``; ``written`` hears of each
    batch of results it writes (for run statistics)."""

    def __init__(
        self,
        queue: PipelineQueue,
        out_dir: Path,
        fsync: Fsync = Fsync.BATCH,
        written: Written | None = None,
    ) -> None:
        self._queue = queue
        self.receipts = AppendOnlyFile(out_dir / RECEIPTS_FILE, RECEIPTS_HEADER, fsync)
        self.results = AppendOnlyFile(out_dir / RESULTS_FILE, RESULTS_HEADER, fsync)
        self._written = written
        self._window: dict[int, Receipt] = {}  # read, result not written yet
        self._early: dict[int, str | None] = {}  # outcomes of receipts not read yet
        self._read_through = min(self.receipts.lines, self.results.lines)
        self.end_to_end = LatencyBuckets()  # receive_time -> result line written
        self.outage = OutageLog(logger, "writer")  # Redis restarting: said once, waited for
        self.forgotten_through = 0  # the queue was told it may drop receipts up to here

    @property
    def waiting(self) -> int:
        """Receipts read whose result line is not written yet."""
        return len(self._window)

    def figures(self) -> Iterable[Metric]:
        yield counter("latlab_pipeline_receipts_written", "Lines of 2.txt", self.receipts.lines)
        yield counter("latlab_pipeline_results_written", "Lines of 1.txt", self.results.lines)
        yield gauge("latlab_pipeline_waiting", "Receipts whose result line waits", self.waiting)
        yield counter(
            "latlab_pipeline_queue_failures", "Calls to the queue that failed", self.outage.failures
        )
        yield self.end_to_end.family(
            "latlab_pipeline_end_to_end_seconds", "From receive_time to the result line written"
        )

    async def check_files(self) -> None:
        """Raise :class:`FilesMismatch` unless the files go with this queue: the last line of
        ``2.txt`` names the receipt of that number, and the queue still holds the receipt
        the writer goes on from (it forgets those written for good). Otherwise the writer
        would skip (or repeat) lines without a word."""
        lines = self.receipts.lines
        if lines > 0:
            found = await self._queue.receipts(lines - 1, 1, 0)
            last = self.receipts.last_line()
            if not found or found[0].seq != lines or found[0].request_id not in last:
                raise FilesMismatch(
                    f"{self.receipts.path} has {lines} lines that do not match the queue's "
                    "receipts: give this queue its own out dir (or empty this one)"
                )
        written = min(lines, self.results.lines)
        found = await self._queue.receipts(written, 1, 0)
        if found and found[0].seq != written + 1:
            raise FilesMismatch(
                f"{self.results.path} has {written} results, but the queue has forgotten "
                f"receipts {written + 1} to {found[0].seq - 1}, written for good to other "
                "files: point this writer at the out dir it used before"
            )

    async def run(self) -> None:
        """Follow both feeds until cancelled; the files are synced and closed at the end."""
        # The mark is taken before reading: no later outcome is missed.
        mark = await self.outage.retry("reading the outcomes' end", self._queue.mark)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._follow_receipts())
                group.create_task(self._follow_outcomes(mark))
                group.create_task(self._sync_in_batches())
                group.create_task(self._forget_written())
        finally:
            self.receipts.close()
            self.results.close()

    async def _follow_receipts(self) -> None:
        while True:
            read_more = functools.partial(
                self._queue.receipts, self._read_through, READ_BATCH, WAIT_S
            )
            found = await self.outage.retry("reading receipts", read_more)
            for read in found:
                early = read.seq in self._early
                receipt = read.finished(self._early.pop(read.seq)) if early else read
                if receipt.seq > self.results.lines:
                    self._window[receipt.seq] = receipt
            if found:
                self._read_through = found[-1].seq
                fresh = [r for r in found if r.seq > self.receipts.lines]
                self.receipts.append([receipt_line(receipt) for receipt in fresh])
                self._write_results()
            if 0 < len(found) < READ_BATCH:
                await asyncio.sleep(LINGER_S)

    async def _follow_outcomes(self, mark: str) -> None:
        while True:
            read_more = functools.partial(self._queue.finished, mark, READ_BATCH, WAIT_S)
            outcomes, mark = await self.outage.retry("reading outcomes", read_more)
            for outcome in outcomes:
                self._apply(outcome)
            if outcomes:
                self._write_results()
            if 0 < len(outcomes) < READ_BATCH:
                await asyncio.sleep(LINGER_S)

    async def _sync_in_batches(self) -> None:
        while True:
            await asyncio.sleep(BATCH_FSYNC_S)
            self.receipts.sync_pending()
            self.results.sync_pending()

    async def _forget_written(self) -> None:
        """Every second, the queue may drop the receipts whose two lines are on disk: without
        it Redis would keep an entry per request for ever. The last line of 2.txt is kept for
        :meth:`check_files` after a restart."""
        while True:
            await asyncio.sleep(FORGET_EVERY_S)
            through = min(self.results.lines, self.receipts.lines - 1)
            if through <= self.forgotten_through:
                continue
            # On disk first, whatever LATLAB_PIPELINE_FSYNC says: the queue is what a lost
            # line would be written again from.
            self.receipts.sync()
            self.results.sync()
            forget = functools.partial(self._queue.forget, through)
            await self.outage.retry("forgetting written receipts", forget)
            self.forgotten_through = through

    def _apply(self, outcome: Outcome) -> None:
        waiting = self._window.get(outcome.seq)
        if waiting is not None:
            self._window[outcome.seq] = waiting.finished(outcome.error)
        elif outcome.seq > self._read_through:
            self._early[outcome.seq] = outcome.error

    def _write_results(self) -> None:
        """Write the finished results at the head of the window, in order."""
        ready: list[Receipt] = []
        next_seq = self.results.lines + 1
        while (receipt := self._window.get(next_seq)) is not None and receipt.done:
            ready.append(self._window.pop(next_seq))
            next_seq += 1
        if ready:
            now = datetime.now(UTC)
            now_text = utc_text(now)
            self.results.append([result_line(receipt, now_text) for receipt in ready])
            for receipt in ready:
                self.end_to_end.add((now - receipt.receive_time).total_seconds() * 1000)
            if self._written is not None:
                self._written(ready, now)
