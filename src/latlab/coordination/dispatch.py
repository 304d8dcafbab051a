"""Handing jobs to workers: taskiq over Redis streams, for dispatch only.

A message says "run ``(kind, job_id)``"; it carries no authority. The worker that takes it
claims the job in the store (a compare-and-set on the owner its checkpoint names) and holds
it with its lease, so a message delivered twice, or to a worker that dies, costs nothing:
liveness is the lease's, never taskiq's redelivery (which in taskiq-redis 1.2 reclaims a dead
worker's message only after unrelated traffic, and duplicates a long task).

Two lanes per location: ``heavy`` (experiments and load runs, bounded by a worker's
capacity) and ``light`` (bots, not counted against it). A worker reads its location's
streams and the ``any`` location's. Consumer groups start at ``0``, not ``$``: a job
dispatched before the first worker of its location started is still read.

The broker's connections have no socket timeout (redis-py 8 sets 5 s by default): with one,
redis-py sends through ``asyncio.wait_for``, which on Python 3.11 can swallow the
cancellation that stops an idle worker (CPython gh-86296). Reads block server-side for
``READ_BLOCK_MS`` at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, cast

from redis.asyncio import Redis
from taskiq import AckableMessage, AsyncBroker
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

from latlab.cancellation import deliver_lost_cancel
from latlab.coordination.fleet import ANY_LOCATION
from latlab.coordination.streams import Lane, lane_of, stream_name, worker_address

TASK_NAME = "latlab.run_job"
READ_BLOCK_MS = 1000
STREAM_MAXLEN = 100_000  # acknowledged messages are trimmed, approximately, past this many
RunJob = Callable[[str, int], Awaitable[None]]
StreamEntries = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]  # XREADGROUP's reply

log = logging.getLogger("latlab.worker")


class _StreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, reading without its redelivery: liveness is the
    lease's. Its reclaim step also ran a pipeline that a worker stopped at that moment could
    leave holding a connection (a ResourceWarning in about one test run in three)."""

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        streams = {self.queue_name: ">", **self.additional_streams}
        async with Redis(connection_pool=self.connection_pool) as client:
            while True:
                read = await client.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    streams,  # type: ignore[arg-type]
                    count=self.count,
                    block=self.block,
                )
                entries = sorted(
                    (
                        (stream, entry_id, fields)
                        for stream, items in cast(StreamEntries, read) or []
                        for entry_id, fields in items
                    ),
                    key=lambda entry: _entry_order(entry[1]),
                )
                # COUNT is per stream: a read of two may return one of each. The oldest is
                # kept (neither stream starves the other); the rest go back, for a worker
                # with room, before this one waits for its next slot.
                for stream, entry_id, fields in entries[self.count :]:
                    await client.xadd(stream, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
                    await client.xack(stream, self.consumer_group_name, entry_id)
                for stream, entry_id, fields in entries[: self.count]:
                    ack = functools.partial(self._ack, stream, entry_id)
                    yield AckableMessage(data=fields.get(b"data", b""), ack=ack)

    async def _ack(self, stream: bytes, entry_id: bytes) -> None:
        async with Redis(connection_pool=self.connection_pool) as client:
            await client.xack(stream, self.consumer_group_name, entry_id)


def _entry_order(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``) as a sortable pair: when it was added."""
    milliseconds, _, sequence = entry_id.partition(b"-")
    return int(milliseconds), int(sequence or 0)


def _broker(url: str, prefix: str, streams: list[str], consumer: str = "") -> RedisStreamBroker:
    return _StreamBroker(
        url,
        queue_name=streams[0],
        consumer_group_name=f"{prefix}:workers",
        consumer_name=consumer or None,
        consumer_id="0",
        additional_streams={stream: ">" for stream in streams[1:]},
        xread_block=READ_BLOCK_MS,
        xread_count=1,  # take one job at a time: the rest stay for workers with room
        maxlen=STREAM_MAXLEN,
        socket_timeout=None,  # redis-py 8 defaults to 5 s, which brings the wait_for hole
        socket_keepalive=True,
    )


# Brokers kept for workers' own streams: a worker's id is new at each start, so the oldest
# go (each holds a Redis connection).
WORKER_BROKERS_KEPT = 16


class Dispatcher:
    """The API's side: sends a job to a lane and location."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        self._brokers: dict[str, AsyncBroker] = {}

    async def dispatch(self, kind: str, job_id: int, location: str = ANY_LOCATION) -> None:
        stream = stream_name(self._prefix, lane_of(kind), location)
        broker = self._brokers.get(stream)
        if broker is None:
            broker = _broker(self._url, self._prefix, [stream])
            await broker.startup()  # creates the group at 0 before any worker reads
            self._brokers[stream] = broker
            await self._forget_old_worker_brokers()
        kicker: AsyncKicker[[str, int], None] = AsyncKicker(
            TASK_NAME, broker, labels={"queue_name": stream}
        )
        await kicker.kiq(kind, job_id)

    async def _forget_old_worker_brokers(self) -> None:
        own = [stream for stream in self._brokers if stream.rsplit(":", 1)[-1].startswith("@")]
        for stream in own[:-WORKER_BROKERS_KEPT]:
            await self._brokers.pop(stream).shutdown()

    async def close(self) -> None:
        for broker in self._brokers.values():
            await broker.shutdown()
        self._brokers.clear()


class Handling:
    """A lane's room and the calls under way, kept across restarts of its reading loop (a
    Redis hiccup): a restart neither forgets the jobs that hold slots nor cancels a claim
    half made. Closed once, when the worker stops."""

    def __init__(self, slots: int) -> None:
        self.free = asyncio.Semaphore(slots)
        self._running: set[asyncio.Task[None]] = set()

    def start(self, call: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(call)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def close(self) -> None:
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


async def receive(
    url: str,
    prefix: str,
    *,
    lane: Lane,
    location: str,
    consumer: str,
    handling: Handling,
    run: RunJob,
) -> None:
    """Run ``run(kind, job_id)`` for each message of the lane while ``handling`` has room.

    A message is read only when a slot is free (so the rest wait for workers with room) and
    acknowledged when received. Runs until cancelled; the calls under way go on.

    The loop is ours, over taskiq-redis's stream consumer and taskiq's message format:
    taskiq 0.13's ``Receiver`` could not be cancelled once it had run a task (its read, in an
    anyio task group, stayed "cancelling" forever), and a worker must stop on SIGTERM.
    """
    places = dict.fromkeys([worker_address(consumer), location, ANY_LOCATION])
    streams = [stream_name(prefix, lane, name) for name in places]
    broker = _broker(url, prefix, streams, consumer)
    await broker.startup()
    messages = broker.listen()
    try:
        while True:
            deliver_lost_cancel()
            await handling.free.acquire()
            try:
                data = await _received(await anext(messages))
            except BaseException:
                handling.free.release()
                raise
            handling.start(_run_one(broker, data, run, handling.free.release))
    finally:
        # Closed here, not whenever the collector finds it: it holds a Redis connection.
        with contextlib.suppress(Exception):
            await messages.aclose()
        await broker.shutdown()


async def _received(message: bytes | AckableMessage) -> bytes:
    """The message's data, acknowledged: liveness is the lease's, not redelivery's."""
    if isinstance(message, bytes):
        return message
    acknowledged = message.ack()
    if acknowledged is not None:
        await acknowledged
    return message.data


async def _run_one(broker: AsyncBroker, data: bytes, run: RunJob, done: Callable[[], None]) -> None:
    try:
        message = broker.formatter.loads(data)
        kind, job_id = message.args
        if message.task_name != TASK_NAME or not isinstance(kind, str) or type(job_id) is not int:
            raise ValueError(f"not a job to run: {message.task_name} {message.args!r}")
        await run(kind, job_id)
    except Exception:
        log.exception("dispatched job not run")
    finally:
        done()
