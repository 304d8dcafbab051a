"""The SQL queue's transactions on a SQLite file, on the event loop itself.

A transaction of a few receipts takes SQLite about 0.1 ms. Handing each to a thread cost
more than that: waking it, and the GIL going back and forth with the busy loop (ack p99
at 5,000 req/s 6-8 ms through a thread, 4-6 ms on the loop; the process at 73-81 % of a
core instead of 59-67 %). What could make the loop wait goes to a thread of its own:

- **Another writer's lock** (the store's engine writing a run, another process): the
  loop's connection never waits (busy timeout 0); a transaction that finds the lock taken
  runs in the thread, whose connection waits with the store's busy timeout. So does a
  transaction too large to hold the loop for (``INLINE_ROWS``).
- **Checkpoints** (copying the write-ahead log back into the database, with fsyncs): SQLite
  runs them inside a commit; here the thread runs them beside the writes, every
  ``CHECKPOINT_EVERY_S``. Writes that never pause would keep the log growing (to 100 MB
  in one 8 s run at 5,000 req/s). So once a pass has copied it all, or it has grown past
  ``RESTART_OVER_PAGES``, the thread holds the writes back, copies the rest and makes the
  first write of a new log itself: starting a log over syncs its header, which the loop's
  next commit would otherwise do. A reader still holding the old log makes that impossible
  for a while: the thread then tries again ``RESTART_BACKOFF_S`` later, not every pass.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL

from latlab.pipeline.queue.base import QueueUnavailable
from latlab.pipeline.queue.sql_writes import Change, Committed
from latlab.pipeline.queue.sqlite_sql import transaction
from latlab.storage.sql.engine import SQLITE_BUSY_TIMEOUT_S, sqlite_pragmas

T = TypeVar("T")
logger = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 0.2
RESTART_OVER_PAGES = 2_000  # 8 MB of log at SQLite's 4 KiB pages
RESTART_BACKOFF_S = 5.0
INLINE_ROWS = 2_000  # a larger transaction (a backlog after a wait) runs in the thread


def sqlite_file(url: URL) -> tuple[str, bool] | None:
    """The database and whether it is a ``file:`` URI, as the store's engine opens it; None
    for an in-memory database (another connection would see another one)."""
    [database], options = SQLiteDialect_pysqlite().create_connect_args(url)
    uri = bool(options.get("uri", False))
    if uri:
        parsed = urlsplit(database)
        memory = parsed.path == ":memory:" or "memory" in parse_qs(parsed.query).get("mode", [])
    else:
        memory = database in ("", ":memory:")
    return None if memory else (database, uri)


class SqliteWrites:
    """:class:`~latlab.pipeline.queue.sql_writes.ReceiptWrites` on a SQLite file."""

    def __init__(
        self, db: sqlite3.Connection, side: sqlite3.Connection, thread: ThreadPoolExecutor
    ) -> None:
        self._db = db  # the event loop's; never waits for a lock
        self._side = side  # the thread's: transactions that must wait, and checkpoints
        self._thread = thread
        self._turn = asyncio.Lock()  # one transaction, or a log restart, at a time
        self._checkpoints: asyncio.Task[None] | None = None
        self._restart_not_before_s = 0.0
        self._written_since_restart = True  # (what an earlier process left is unknown)
        self._checkpoint_failing = False
        self._closed = False
        self.waited = 0  # transactions that found the lock taken
        self.in_thread = 0  # transactions run in the thread: those, and the large ones
        self.checkpoints = 0  # passes run
        self.held = 0  # times the writes were held back to start the log over
        self.restarts = 0  # logs started over

    @classmethod
    async def open(cls, url: URL) -> Self:
        """On the file of ``url`` (see :func:`sqlite_file`)."""
        found = sqlite_file(url)
        if found is None:
            raise ValueError(f"{url!r} is an in-memory database, not a file")
        database, uri = found
        timeout_s = float(str(url.query.get("timeout", SQLITE_BUSY_TIMEOUT_S)))
        thread = ThreadPoolExecutor(1, thread_name_prefix="latlab-pipeline-sqlite")
        loop = asyncio.get_running_loop()
        side: sqlite3.Connection | None = None
        try:
            side = await loop.run_in_executor(thread, _connect, database, uri, timeout_s)
            writes = cls(_connect(database, uri, 0.0), side, thread)
        except BaseException:
            if side is not None:
                await loop.run_in_executor(thread, side.close)
            thread.shutdown()
            raise
        writes._checkpoints = loop.create_task(writes._checkpoint_often())
        return writes

    async def commit(self, change: Change) -> Committed:
        async with self._turn:
            if self._closed:
                raise QueueUnavailable("the pipeline queue is closed")
            self._written_since_restart = True
            if change.rows <= INLINE_ROWS:
                try:
                    return transaction(self._db, change)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # any BUSY_* too
                        raise
                # Another connection writes (the store's engine, another process): wait for
                # it in the thread; the loop must not (it may be what that writer waits for).
                self.waited += 1
            self.in_thread += 1
            return await self._in_thread(transaction, self._side, change)

    async def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            await asyncio.wait([self._checkpoints])  # whatever it ended with: it is over
        async with self._turn:  # a transaction under way in the thread ends first
            if self._closed:
                return
            self._db.close()
            await self._in_thread(self._side.close)
            self._closed = True
        self._thread.shutdown()

    async def checkpoint(self) -> None:
        """Copy the log into the database beside the writes, and start the log over here
        once it has all been copied, or has grown past ``RESTART_OVER_PAGES`` (see the
        module's docstring)."""
        if not self._written_since_restart:
            return  # nothing of ours to copy; a pass would leave the loop a log to restart
        log_pages, copied = await self._in_thread(_checkpoint, self._side)
        self.checkpoints += 1
        grown = log_pages > RESTART_OVER_PAGES and monotonic() >= self._restart_not_before_s
        if copied < log_pages and not grown:
            return
        async with self._turn:
            self.held += 1
            restarted = await self._in_thread(_restart_log, self._side)
        if restarted:
            self.restarts += 1
            self._written_since_restart = False
        else:  # a reader holds the old log
            self._restart_not_before_s = monotonic() + RESTART_BACKOFF_S

    async def _checkpoint_often(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            try:
                await self.checkpoint()
            except Exception as exc:  # the next pass tries again; the log grows meanwhile
                if not self._checkpoint_failing:
                    logger.warning("pipeline queue: checkpoints of the SQLite log fail: %s", exc)
                self._checkpoint_failing = True
            else:
                if self._checkpoint_failing:
                    logger.warning("pipeline queue: checkpoints of the SQLite log work again")
                self._checkpoint_failing = False

    async def _in_thread(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)


def _connect(database: str, uri: bool, timeout_s: float) -> sqlite3.Connection:
    # Autocommit mode: the transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    db = sqlite3.connect(database, timeout=timeout_s, isolation_level=None, uri=uri)
    sqlite_pragmas(db, None)
    db.execute("PRAGMA wal_autocheckpoint=0")  # SqliteWrites.checkpoint's work, not a commit's
    return db


def _checkpoint(db: sqlite3.Connection) -> tuple[int, int]:
    """A passive checkpoint (it takes no lock a writer waits for): the log's size in pages,
    and how many of them are in the database now."""
    _busy, log_pages, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(log_pages), int(copied)


def _restart_log(db: sqlite3.Connection) -> bool:
    """With the writes held back: copy the rest of the log, then write once, which starts the
    log over (syncing its new header) here rather than in the loop's next commit. Whether it
    could: not while a reader still needs the old log (then not every page could be copied).
    No pass follows the write: copying it would leave the loop a log to start over."""
    log_pages, copied = _checkpoint(db)
    if copied < log_pages:
        return False
    # user_version set to its own value: a write of one page (the header) and nothing else.
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    db.execute(f"PRAGMA user_version = {version}")
    return True
