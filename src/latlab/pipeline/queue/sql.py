"""The pipeline's queue in LatLab's SQL store (SQLite by default): ``pipeline up``'s.

One process owns it (``pipeline up`` runs all four services), which allows two things:

- **Group commit**: one transaction at a time, taking every append, outcome and claim that
  waits; claims and outcomes wait up to ``SHARE_COMMIT_S`` for an append to share one, so an
  acknowledgement waits for about two transactions however busy the handler is.
- **A mirror in memory** of what this process appended and recorded: the handler and the
  writer read it there, not from the table. The table is what survives a crash; after one,
  every receipt without an outcome is handed out again with ``tries`` one higher (a request
  that keeps killing its handler fails for good), and reads before the mirror's start go to
  the table.

What one transaction writes is a :class:`~latlab.pipeline.queue.sql_writes.Change`; who
writes it depends on the store (``sql_writes``).
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from itertools import chain
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncEngine

from latlab.pipeline.queue import sql_rows as rows
from latlab.pipeline.queue.base import Outcome, QueueUnavailable
from latlab.pipeline.queue.sql_writes import AlchemyWrites, Change, ReceiptWrites, Recorded
from latlab.pipeline.receipts import Incoming, Receipt
from latlab.storage.sql.engine import create_engine, migrate

FEED_KEPT = 100_000  # outcomes kept in memory for the writer's feed
SHARE_COMMIT_S = 0.005  # claims and outcomes wait this long at most for an append to join


class SqlQueue:
    """A :class:`~latlab.pipeline.queue.base.PipelineQueue` on an SQL database."""

    def __init__(
        self, engine: AsyncEngine, writes: ReceiptWrites, last_seq: int, last_order: int
    ) -> None:
        self._engine = engine  # reads (rare: what the mirror does not hold)
        self._writes = writes
        self.transactions = 0  # committed
        self._last_seq, self._last_order = last_seq, last_order  # committed numbering
        self._mirror_from_seq, self._mirror_from_order = last_seq, last_order
        self._recent: dict[int, Receipt] = {}  # appended or handed out here, kept until read
        self._reader_at = 0  # the writer has read receipts up to here
        self._unclaimed: deque[int] = deque()
        self._backlog_loaded = False  # receipts left unfinished by an earlier process
        self._feed: list[tuple[int, int, str | None]] = []  # (order, seq, error), by order
        self._changed = asyncio.Event()  # replaced at each change: a waiter misses none
        self._appends: list[tuple[Sequence[Incoming], asyncio.Future[list[Receipt]]]] = []
        self._finishes: list[tuple[int, str | None, asyncio.Future[None]]] = []
        self._claims: list[tuple[list[int], asyncio.Future[None]]] = []
        self._forgets: list[asyncio.Future[None]] = []  # each done once its delete committed
        self._forget_through = 0  # receipts up to here may go (forget)
        self._forgotten = 0  # and up to here they are gone (or kept on purpose)
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._append_came = asyncio.Event()

    @classmethod
    async def open(cls, url: str) -> Self:
        engine = create_engine(url)
        try:
            await migrate(engine)
            async with engine.connect() as conn:
                last_seq, last_order = await rows.tops(conn)
            writes = await _writes_for(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, writes, last_seq, last_order)

    async def close(self) -> None:
        self._closing = True  # what is left to forget waits for the next start's writer
        try:
            if self._writer is not None:
                # Waited for, never cancelled (a cancelled close must not cut a transaction
                # under way), whatever it ended with.
                await asyncio.wait([self._writer])
        finally:
            try:
                await self._writes.close()
            finally:
                await self._engine.dispose()

    # --- writes: one transaction at a time, each taking everything that waits ---

    async def append(self, batch: Sequence[Incoming]) -> list[Receipt]:
        if self._closing:
            raise QueueUnavailable("the pipeline queue is closing")
        future: asyncio.Future[list[Receipt]] = asyncio.get_running_loop().create_future()
        self._appends.append((batch, future))
        self._append_came.set()
        self._write_soon()
        return await future

    async def finish(self, seq: int, error: str | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finishes.append((seq, error, future))
        self._write_soon()
        await future

    def _write_soon(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_all())

    async def _write_all(self) -> None:
        while self._has_work():
            if not self._appends:
                await self._wait_for_an_append()
            appends, self._appends = self._appends, []
            finishes, self._finishes = self._finishes, []
            claims, self._claims = self._claims, []
            others = [f for *_, f in finishes] + [f for _, f in claims] + self._forgets
            self._forgets = []
            try:
                receipts, recorded = await self._commit(appends, finishes, claims)
            except BaseException as exc:
                # Claimed receipts whose tries were not counted go out again, first.
                self._unclaimed.extendleft(reversed([s for seqs, _ in claims for s in seqs]))
                _fail([f for _, f in appends] + others, exc)
                if not isinstance(exc, Exception):
                    # Cancelled (the loop ends): whether it committed is unknown here, so
                    # the numbering may be stale; the next start reads it from the table.
                    self._closing = True
                    raise
                continue
            self._mirror(receipts, recorded)
            for (_, appended), batch_receipts in zip(appends, receipts, strict=True):
                if not appended.done():
                    appended.set_result(batch_receipts)
            for other in others:
                if not other.done():
                    other.set_result(None)
            self._notify()

    def _has_work(self) -> bool:
        return bool(self._appends or self._finishes or self._claims or self._forgets)

    async def _wait_for_an_append(self) -> None:
        """The handler's claims and outcomes wait a moment for the receiver's next batch, so
        that they share its transaction: a commit of their own would make that batch, whose
        acknowledgements clients wait for, wait behind it."""
        self._append_came = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHARE_COMMIT_S):
                await self._append_came.wait()

    async def _commit(
        self,
        appends: list[tuple[Sequence[Incoming], asyncio.Future[list[Receipt]]]],
        finishes: list[tuple[int, str | None, asyncio.Future[None]]],
        claims: list[tuple[list[int], asyncio.Future[None]]],
    ) -> tuple[list[list[Receipt]], list[Recorded]]:
        """One transaction; the numbering moves on only once it committed."""
        seq, receipts = self._last_seq, []
        for batch, _ in appends:
            receipts.append([item.receipt(seq + n) for n, item in enumerate(batch, 1)])
            seq += len(batch)
        order, known, unknown, seen = self._last_order, [], [], set()
        for finished_seq, error, _ in finishes:
            mirrored = self._recent.get(finished_seq)
            if finished_seq in seen or (mirrored is not None and mirrored.done):
                continue  # a repeat changes nothing
            seen.add(finished_seq)
            if mirrored is None:
                unknown.append((finished_seq, error))
            else:
                order += 1
                known.append((finished_seq, order, error))
        # Never the newest receipt (a restart numbers on from it), and in bounded steps:
        # a long history must not hold the transaction acknowledgements wait for.
        forget_through = min(self._forget_through, seq - 1)
        change = Change(
            receipts=list(chain(*receipts)),
            outcomes=known,
            unknown=unknown,
            claimed=list(chain(*(seqs for seqs, _ in claims))),
            last_order=order,
            forget_through=forget_through if forget_through > self._forgotten else 0,
        )
        committed = await self._writes.commit(change)
        self.transactions += 1
        if change.forget_through and committed.forgot_all:
            self._forgotten = forget_through
        self._last_seq, self._last_order = seq, committed.last_order
        return receipts, committed.recorded

    def _mirror(self, receipts: list[list[Receipt]], recorded: list[Recorded]) -> None:
        for receipt in chain(*receipts):
            self._recent[receipt.seq] = receipt
            self._unclaimed.append(receipt.seq)
        for seq, order, error in recorded:
            self._feed.append((order, seq, error))
            mirrored = self._recent.get(seq)
            if seq <= self._reader_at:
                self._recent.pop(seq, None)  # read and finished: nobody asks for it again
            elif mirrored is not None:
                self._recent[seq] = mirrored.finished(error)
        if len(self._feed) > 2 * FEED_KEPT:  # trimmed in halves: amortized, not per outcome
            del self._feed[:-FEED_KEPT]

    # --- the handler's side ---

    async def claim(self, limit: int, wait_s: float) -> list[Receipt]:
        if not self._backlog_loaded:
            await self._load_backlog()
        change = self._changed
        seqs = self._take(limit)
        if not seqs and await self._waited(change, wait_s):
            seqs = self._take(limit)
        if not seqs:
            return []
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._claims.append((seqs, future))
        self._write_soon()
        await future
        claimed = []
        for seq in seqs:
            receipt = self._recent[seq]
            self._recent[seq] = receipt = receipt.tried()
            claimed.append(receipt)
        return claimed

    def _take(self, limit: int) -> list[int]:
        taken: list[int] = []
        while self._unclaimed and len(taken) < limit:
            seq = self._unclaimed.popleft()
            receipt = self._recent.get(seq)
            if receipt is not None and not receipt.done:
                taken.append(seq)
        return taken

    async def _load_backlog(self) -> None:
        """What an earlier process left unfinished goes out first, in order."""
        async with self._engine.connect() as conn:
            found = await rows.read(conn, rows.unfinished_through(self._mirror_from_seq))
        self._backlog_loaded = True
        backlog = [receipt for receipt, _ in found if receipt.seq not in self._recent]
        for receipt in backlog:
            self._recent[receipt.seq] = receipt
        self._unclaimed.extendleft(receipt.seq for receipt in reversed(backlog))

    async def forget(self, through: int) -> None:
        if through > self._forget_through:
            # Written and read: from now on what is left of them is read from the table.
            for gone in [mirrored for mirrored in self._recent if mirrored <= through]:
                del self._recent[gone]
            self._forget_through = through
        # A few hundred a transaction (sql_rows.FORGET_BATCH), each shared with an append
        # when one comes, until none that may go is left.
        while not self._closing:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._forgets.append(future)
            self._write_soon()
            await future
            if not self._forget_behind():
                return

    def _forget_behind(self) -> bool:
        return min(self._forget_through, self._last_seq - 1) > self._forgotten

    async def heartbeat(self, seqs: Sequence[int]) -> list[int]:
        """Claims never lapse here (one process, one handler): all are still held."""
        return list(seqs)

    # --- the writer's side ---

    async def receipts(self, after: int, limit: int, wait_s: float) -> list[Receipt]:
        change = self._changed
        found = await self._receipts(after, limit)
        if not found and await self._waited(change, wait_s):
            found = await self._receipts(after, limit)
        return found

    async def _receipts(self, after: int, limit: int) -> list[Receipt]:
        self._forget_read(after)
        if after >= self._mirror_from_seq:
            last = min(self._last_seq, after + limit)
            mirrored = [self._recent.get(seq) for seq in range(after + 1, last + 1)]
            if all(receipt is not None for receipt in mirrored):
                return [receipt for receipt in mirrored if receipt is not None]
        async with self._engine.connect() as conn:
            return [receipt for receipt, _ in await rows.read(conn, rows.after_seq(after, limit))]

    def _forget_read(self, after: int) -> None:
        """The writer asks from ``after`` on: finished receipts up to it are done with."""
        for seq in range(self._reader_at + 1, after + 1):
            receipt = self._recent.get(seq)
            if receipt is not None and receipt.done:
                del self._recent[seq]
        self._reader_at = max(self._reader_at, after)

    async def mark(self) -> str:
        return str(self._last_order)

    async def finished(self, mark: str, limit: int, wait_s: float) -> tuple[list[Outcome], str]:
        change = self._changed
        found = await self._finished(int(mark), limit)
        if not found and await self._waited(change, wait_s):
            found = await self._finished(int(mark), limit)
        if not found:
            return [], mark
        return [Outcome(seq, error) for _, seq, error in found], str(found[-1][0])

    async def _finished(self, after: int, limit: int) -> list[tuple[int, int, str | None]]:
        feed = self._feed
        first = feed[0][0] if feed else self._last_order + 1
        if after >= max(self._mirror_from_order, first - 1):
            start = bisect_right(feed, after, key=_order)  # the feed is kept in order
            return feed[start : start + limit]
        async with self._engine.connect() as conn:
            found = await rows.read(conn, rows.after_order(after, limit))
        return [(order or 0, receipt.seq, receipt.error) for receipt, order in found]

    # --- waiting ---

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _waited(self, change: asyncio.Event, wait_s: float) -> bool:
        """Whether ``change`` (taken before a read that found nothing) came within ``wait_s``."""
        if wait_s <= 0:
            return False
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # comes as the event is set, and the caller's loop would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await change.wait()
        return change.is_set()


async def _writes_for(engine: AsyncEngine) -> ReceiptWrites:
    """A SQLite file is written with sqlite3 itself (sqlite_writes); others by the engine."""
    if engine.url.get_backend_name() == "sqlite":
        from latlab.pipeline.queue.sqlite_writes import SqliteWrites, sqlite_file

        if sqlite_file(engine.url) is not None:
            return await SqliteWrites.open(engine.url)
    return AlchemyWrites(engine)


def _fail(futures: list[asyncio.Future[Any]], error: BaseException) -> None:
    if not isinstance(error, Exception):  # cancelled: its waiters answer 503, not hang
        error = QueueUnavailable("the pipeline queue is closing")
    for future in futures:
        if not future.done():
            future.set_exception(error)


def _order(entry: tuple[int, int, str | None]) -> int:
    return entry[0]
