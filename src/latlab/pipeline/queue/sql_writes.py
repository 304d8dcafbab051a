"""The SQL queue's transactions, as a port: what one commit writes, and who writes it.

:class:`~latlab.pipeline.queue.sql.SqlQueue` decides what goes into each transaction (group
commit) and keeps the mirror; a :class:`ReceiptWrites` makes that one transaction durable:

- :class:`AlchemyWrites` (here): SQLAlchemy on the store's engine, for PostgreSQL and an
  in-memory SQLite.
- :class:`~latlab.pipeline.queue.sqlite_writes.SqliteWrites`: a SQLite file, the embedded
  default, written with the sqlite3 module on the event loop itself. Through aiosqlite every
  statement was a round trip between the loop and its thread, about eight a transaction,
  each waiting for a turn of a loop busy with the receiver's requests (ack p50 at 5,000
  req/s: 12 ms; now under 1 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from latlab.pipeline.queue import sql_rows as rows
from latlab.pipeline.receipts import Receipt

# (seq, order, error): a receipt's outcome and its place in the outcome feed.
Recorded = tuple[int, int, str | None]


@dataclass(frozen=True)
class Change:
    """What one transaction writes."""

    receipts: list[Receipt] = field(default_factory=list)  # new, numbered
    outcomes: list[Recorded] = field(default_factory=list)  # of receipts handed out here
    # Outcomes of receipts this process did not hand out (rare): each numbered after the
    # last order only if its receipt is still there unfinished.
    unknown: list[tuple[int, str | None]] = field(default_factory=list)
    claimed: list[int] = field(default_factory=list)  # their tries go one up
    last_order: int = 0  # the outcome feed's last number once ``outcomes`` are in
    forget_through: int = 0  # finished receipts up to here may go (0: none)

    @property
    def rows(self) -> int:
        """How many rows it writes, forgetting aside (that is bounded)."""
        return len(self.receipts) + len(self.outcomes) + len(self.unknown) + len(self.claimed)


@dataclass(frozen=True)
class Committed:
    recorded: list[Recorded]  # ``outcomes``, then the unknown ones that were recorded
    last_order: int
    forgot_all: bool  # every receipt up to ``forget_through`` that may go has gone


class ReceiptWrites(Protocol):
    async def commit(self, change: Change) -> Committed:
        """Write ``change`` in one transaction; nothing of it if this raises."""
        ...

    async def close(self) -> None: ...


class AlchemyWrites:
    """:class:`ReceiptWrites` on a SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def commit(self, change: Change) -> Committed:
        recorded, order, forgot_all = list(change.outcomes), change.last_order, True
        async with self._engine.begin() as conn:
            await rows.insert(conn, change.receipts)
            await rows.record(conn, change.outcomes)
            for seq, error in change.unknown:
                if await rows.record_one(conn, seq, order + 1, error):
                    order += 1
                    recorded.append((seq, order, error))
            await rows.add_tries(conn, change.claimed)
            if change.forget_through:
                forgotten = await rows.forget(conn, change.forget_through, order)
                forgot_all = forgotten < rows.FORGET_BATCH
        return Committed(recorded, order, forgot_all)

    async def close(self) -> None:
        """The engine is the queue's, which disposes of it."""
