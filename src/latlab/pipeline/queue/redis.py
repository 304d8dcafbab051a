"""The pipeline's queue in Redis Streams: services on any machine, handlers in a group.

Keys, under ``<prefix>:pipeline:``:

- ``receipts``: a stream, one entry per receipt, its ID ``<seq>-0`` (so stream order is
  receipt order); ``seq`` holds the last seq handed out. One script numbers and adds a
  batch: all of it or none, so seq has no gap.
- ``tries``: a hash, seq → how often the receipt was claimed.
- ``outcomes``: a hash, seq → ``ok`` or ``error: <why>``, set once.
- ``finished``: a stream, one entry per outcome as it is recorded (``seq``, and ``error``
  if it failed): the writer's feed; a mark is an entry ID.
- ``batch:<token>``: the first seq of a batch, for a minute: an append that the client
  retries (its reply lost with the connection; the retries end within seconds) is not
  appended twice. At 5,000 req/s the receiver appends about 1,200 batches a second: an hour
  of tokens was 4 million keys.
- ``forgotten``: the seq through which receipts were dropped (``forget``): the writer has
  both their lines on disk; their tries, outcomes and the feed's entries it read go too.

Handlers read ``receipts`` in the consumer group ``handlers``, each under its own consumer
name. A handler that restarts under its name gets what it held back first; entries held
elsewhere for longer than ``lease_s`` without a :meth:`RedisQueue.heartbeat` go to whoever
claims next (that handler died). An entry leaves the group once finished.

``append`` returns once Redis has the receipts; that they survive a crash of Redis itself
takes ``appendonly yes`` with ``appendfsync always`` on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

import redis.asyncio as redis

from latlab.coordination.redis import open_client
from latlab.pipeline.queue.base import Outcome, QueueUnavailable
from latlab.pipeline.queue.redis_entries import (
    FAILED,
    OK,
    Entry,
    entries_of,
    fields_of,
    receipt_of,
    seq_of,
)
from latlab.pipeline.queue.redis_scripts import APPEND, FINISH, FORGET, HEARTBEAT, TAKE
from latlab.pipeline.receipts import Incoming, Receipt
from latlab.storage.registry import where

GROUP = "handlers"
FINISH_BATCH = 500  # outcomes in one script call
# A handler's outcomes wait this long for company: with appendfsync always each script is an
# fsync that the receiver's next acknowledgement may queue behind (bench/pipeline_throughput.py,
# 5,000 req/s: ack p99 median of five runs 5.7 -> 4.8 ms; outcomes 10 ms later).
FINISH_LINGER_S = 0.01
FORGET_BATCH = 10_000  # receipts dropped in one script call: a few ms of Redis

T = TypeVar("T")


# KEYS: receipts, seq, the batch's token. ARGV: request_id, delay_s, receive_time_us, run_id
# ("" for none), per receipt. The token makes a retry (the reply was lost with a connection)
# return the first seq again instead of appending twice. Checked before anything is written:
# a script that fails is not rolled back.
class RedisQueue:
    """A :class:`~latlab.pipeline.queue.base.PipelineQueue` in Redis Streams.

    Beyond the port: :meth:`heartbeat`, which a handler calls every ``lease_s / 3`` for the
    receipts it is still processing, so that a long delay is not taken over.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        url: str = "redis://",
        consumer: str = "handler-1",
        lease_s: float = 30.0,
        block_slice_s: float = 2.0,
    ) -> None:
        self._redis = client
        self._where = where(url)
        self._prefix = prefix
        self._consumer = consumer
        self._lease_ms = max(1, round(lease_s * 1000))
        self._block_slice_s = block_slice_s  # below the socket timeout
        self._stream, self._counter, self._tries, self._outcomes, self._finished = (
            f"{prefix}:pipeline:{name}"
            for name in ("receipts", "seq", "tries", "outcomes", "finished")
        )
        self._forgotten = f"{prefix}:pipeline:forgotten"  # receipts dropped up to this seq
        self._own_from: str | None = "0"  # what this consumer held before it (re)started
        self._idle_from = "0-0"  # where the scan for entries idle elsewhere goes on
        self._next_scan_s = 0.0  # monotonic time the next scan may begin
        self._append = client.register_script(APPEND)
        self._take = client.register_script(TAKE)
        self._finish = client.register_script(FINISH)
        self._heartbeat = client.register_script(HEARTBEAT)
        self._forget = client.register_script(FORGET)
        self._read_mark = ""  # the finished feed was read through here (by this process)
        self._finishes: list[tuple[int, str | None, asyncio.Future[None]]] = []
        self._finisher: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        prefix: str,
        *,
        consumer: str = "handler-1",
        lease_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> RedisQueue:
        # Commands are retried on a new connection, so each may run twice: append then
        # finds its token, finish and heartbeat change nothing more, and a claim's entries
        # whose reply was lost come back after the lease (a claim may count a try twice).
        client = open_client(url, timeout_s)
        queue = cls(
            client, prefix, url=url, consumer=consumer, lease_s=lease_s, block_slice_s=timeout_s / 2
        )
        try:
            with queue._reachable():
                await queue._create_group()
        except BaseException:
            await client.aclose()
            raise
        return queue

    async def _create_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # BUSYGROUP: it exists already
                raise

    async def close(self) -> None:
        await self._redis.aclose()

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            cause = " ".join(str(exc).split()) or type(exc).__name__
            message = f"the pipeline's queue at {self._where} is not reachable: {cause}"
            raise QueueUnavailable(message) from exc

    async def append(self, batch: Sequence[Incoming]) -> list[Receipt]:
        if not batch:
            return []
        fields = [fields_of(incoming) for incoming in batch]
        args = [value for one in fields for value in one.values()]
        token = f"{self._prefix}:pipeline:batch:{secrets.token_hex(8)}"
        with self._reachable():
            first = int(await self._append(keys=[self._stream, self._counter, token], args=args))
        return [incoming.receipt(first + n) for n, incoming in enumerate(batch)]

    async def claim(self, limit: int, wait_s: float) -> list[Receipt]:
        with self._reachable():
            entries = await self._held_before(limit)
            if len(entries) < limit:
                entries += await self._idle_elsewhere(limit - len(entries))
            if len(entries) < limit:
                count = limit - len(entries)
                entries += await self._blocking(
                    lambda block_ms: self._new(count, block_ms), 0 if entries else wait_s
                )
            return await self._taken(entries)

    async def _held_before(self, limit: int) -> list[Entry]:
        """This consumer's entries not yet finished: handed out before a restart."""
        if self._own_from is None:
            return []
        reply = await self._redis.xreadgroup(
            GROUP, self._consumer, {self._stream: self._own_from}, count=limit
        )
        entries = entries_of(reply)
        # Fewer than asked: all of them are handed out again, from now on only new ones.
        self._own_from = entries[-1][0] if len(entries) == limit else None
        return entries

    async def _idle_elsewhere(self, count: int) -> list[Entry]:
        """Entries idle past the lease: their handler died (or stopped its heartbeat).
        A scan begins at most every ``lease_s / 3``: one per claim would cost Redis a pass
        over the pending entries every few milliseconds under load."""
        if self._idle_from == "0-0" and time.monotonic() < self._next_scan_s:
            return []
        reply = await self._redis.xautoclaim(
            self._stream, GROUP, self._consumer, self._lease_ms, self._idle_from, count
        )
        self._idle_from = str(reply[0])  # "0-0" once the scan is through: it starts over
        if self._idle_from == "0-0":
            self._next_scan_s = time.monotonic() + self._lease_ms / 3000
        return [(str(id_), dict(fields)) for id_, fields in reply[1]]

    async def _new(self, count: int, block_ms: int | None) -> list[Entry]:
        reply = await self._redis.xreadgroup(
            GROUP, self._consumer, {self._stream: ">"}, count=count, block=block_ms
        )
        return entries_of(reply)

    async def _taken(self, entries: list[Entry]) -> list[Receipt]:
        if not entries:
            return []
        seqs = [seq_of(id_) for id_, _ in entries]
        keys = [self._outcomes, self._tries, self._stream]
        tries = await self._take(keys=keys, args=seqs)
        return [
            receipt_of(seq, fields, tries=int(n))
            for seq, (_, fields), n in zip(seqs, entries, tries, strict=True)
            if int(n) > 0
        ]

    async def heartbeat(self, seqs: Sequence[int]) -> list[int]:
        """Keep the receipts ``seqs``, in process here, from being taken over: call it for
        all of them every ``lease_s / 3``. Returns those still held here; one missing was
        taken over by another handler (after a pause longer than the lease) or finished."""
        if not seqs:
            return []
        with self._reachable():
            held = await self._heartbeat(
                keys=[self._stream], args=[self._consumer, *(f"{seq}-0" for seq in seqs)]
            )
        return [seq_of(id_) for id_ in held]

    async def finish(self, seq: int, error: str | None) -> None:
        # Batched: a handler finishes thousands at once, and a call each would need a
        # connection each (the pool has 100) and a round trip each.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finishes.append((seq, error, future))
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.get_running_loop().create_task(self._finish_all())
        await future

    async def _finish_all(self) -> None:
        """What waits goes in one FINISH call; what comes meanwhile, in the next."""
        while self._finishes:
            if len(self._finishes) < FINISH_BATCH:
                await asyncio.sleep(FINISH_LINGER_S)
            batch = self._finishes[:FINISH_BATCH]
            del self._finishes[:FINISH_BATCH]
            try:
                await self._finish_batch([(seq, error) for seq, error, _ in batch])
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for *_, future in batch:
                if not future.done():
                    future.set_result(None)

    async def _finish_batch(self, outcomes: list[tuple[int, str | None]]) -> None:
        keys = [self._outcomes, self._finished, self._stream]
        args: list[str | int] = []
        for seq, error in outcomes:
            args += [seq, OK, ""] if error is None else [seq, FAILED + error, error]
        with self._reachable():
            await self._finish(keys=keys, args=args)

    async def receipts(self, after: int, limit: int, wait_s: float) -> list[Receipt]:
        with self._reachable():
            entries = await self._blocking(
                lambda block_ms: self._read(self._stream, f"{after}-0", limit, block_ms), wait_s
            )
            return await self._as_known_now(entries)

    async def _as_known_now(self, entries: list[Entry]) -> list[Receipt]:
        seqs = [seq_of(id_) for id_, _ in entries]
        if not seqs:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._outcomes, seqs)
            pipe.hmget(self._tries, seqs)
            outcomes, tries = await pipe.execute()
        return [
            receipt_of(seq, fields, tries=int(n or 0), outcome=outcome)
            for seq, (_, fields), outcome, n in zip(seqs, entries, outcomes, tries, strict=True)
        ]

    async def mark(self) -> str:
        with self._reachable():
            last = await self._redis.xrevrange(self._finished, count=1)
        return str(last[0][0]) if last else "0-0"

    async def finished(self, mark: str, limit: int, wait_s: float) -> tuple[list[Outcome], str]:
        self._read_mark = mark  # what came before it is read: forget may drop it
        with self._reachable():
            entries = await self._blocking(
                lambda block_ms: self._read(self._finished, mark, limit, block_ms), wait_s
            )
        outcomes = [Outcome(int(fields["seq"]), fields.get("error")) for _, fields in entries]
        return outcomes, entries[-1][0] if entries else mark

    async def forget(self, through: int) -> None:
        keys = [self._stream, self._tries, self._outcomes, self._finished, self._forgotten]
        previous = -1
        with self._reachable():
            while True:  # in bounded steps: a first call after a long run has millions
                args: list[str | int] = [through, self._read_mark, FORGET_BATCH]
                done = int(await self._forget(keys=keys, args=args))
                if done >= through or done == previous:  # there, or as far as it may go
                    return
                previous = done

    async def _read(self, stream: str, after: str, count: int, block_ms: int | None) -> list[Entry]:
        return entries_of(await self._redis.xread({stream: after}, count=count, block=block_ms))

    async def _blocking(
        self, read: Callable[[int | None], Awaitable[list[T]]], wait_s: float
    ) -> list[T]:
        """``read(block_ms)`` until it finds something or ``wait_s`` is over. Redis blocks in
        slices shorter than the socket timeout: a longer silence would read as a dead server.
        """
        deadline_s = time.monotonic() + wait_s
        found = await read(None)  # None: no blocking (BLOCK 0 would wait for ever)
        while not found and (left_s := deadline_s - time.monotonic()) > 0:
            found = await read(max(1, round(min(left_s, self._block_slice_s) * 1000)))
        return found
