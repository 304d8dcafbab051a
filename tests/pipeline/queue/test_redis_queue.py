"""What only the Redis queue does: handlers on several machines share the receipts (a lease
and its heartbeat), Redis itself crashes or goes away. Each test has a redis-server of its
own, so that it can kill it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from harness import wait_for
from latlab.pipeline.queue import QueueUnavailable
from latlab.pipeline.queue.redis import RedisQueue
from latlab.pipeline.receipts import Incoming, Receipt
from outages import OwnRedis

PREFIX = "latlab-test"
LEASE_S = 1.0  # a heartbeat every fifth of it: a pause of 0.8 s would lose a receipt
Opener = Callable[..., Awaitable[RedisQueue]]


def batch(n: int) -> list[Incoming]:
    start = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
    return [Incoming(str(uuid.uuid4()), 0.5, start + timedelta(seconds=i)) for i in range(n)]


@pytest.fixture
def server() -> Iterator[OwnRedis]:
    with OwnRedis(appendonly=True) as own:
        yield own


@pytest.fixture
async def open_queue(server: OwnRedis) -> AsyncIterator[Opener]:
    """Opens a RedisQueue on this test's server (keyword arguments go to ``open``)."""
    opened: list[RedisQueue] = []

    async def open_one(**options: float | str) -> RedisQueue:
        queue = await RedisQueue.open(server.url, PREFIX, **options)  # type: ignore[arg-type]
        opened.append(queue)
        return queue

    try:
        yield open_one
    finally:
        for queue in opened:
            await queue.close()


@contextlib.asynccontextmanager
async def heartbeats(queue: RedisQueue, seqs: list[int]) -> AsyncIterator[None]:
    """``queue`` keeps ``seqs`` as a handler processing them does, while the body runs."""
    stop = asyncio.Event()

    async def beat() -> None:
        while not stop.is_set():
            await queue.heartbeat(seqs)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEASE_S / 5)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        stop.set()
        await beating


class ReplyLosingProxy:
    """Forwards 127.0.0.1:``port`` to the server; after :meth:`lose_next_reply` it cuts the
    connection instead of passing the next reply on: the command ran, the client cannot
    know."""

    def __init__(self, server_port: int) -> None:
        self._server_port = server_port
        self._lose = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    def lose_next_reply(self) -> None:
        self._lose = True

    async def __aenter__(self) -> ReplyLosingProxy:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._listener.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self._server_port)
        self._writers += [writer, server_writer]
        for task in (self._pump(reader, server_writer), self._replies(server_reader, writer)):
            self._tasks.add(asyncio.create_task(task))

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65_536):
            if self._lose:
                self._lose = False
                writer.transport.abort()
                return
            writer.write(data)
            await writer.drain()
        writer.close()


async def test_an_append_retried_after_its_reply_was_lost_is_appended_once(
    server: OwnRedis,
) -> None:
    async with ReplyLosingProxy(server.port) as proxy:
        queue = await RedisQueue.open(f"redis://127.0.0.1:{proxy.port}/0", PREFIX)
        try:
            await queue.append(batch(1))
            proxy.lose_next_reply()
            assert [r.seq for r in await queue.append(batch(2))] == [2, 3]
            assert [r.seq for r in await queue.receipts(after=0, limit=10, wait_s=0)] == [1, 2, 3]
        finally:
            await queue.close()


async def test_another_handler_takes_over_a_receipt_idle_past_the_lease_not_one_kept_alive(
    open_queue: Opener,
) -> None:
    first = await open_queue(consumer="handler-1", lease_s=LEASE_S)
    second = await open_queue(consumer="handler-2", lease_s=LEASE_S)
    await first.append(batch(2))
    assert [r.seq for r in await first.claim(limit=10, wait_s=0)] == [1, 2]
    taken: list[Receipt] = []

    async def second_took_one() -> bool:
        taken.extend(await second.claim(limit=10, wait_s=0))
        return bool(taken)

    async with heartbeats(first, [1]):  # 2's handler died
        await wait_for(second_took_one, what="handler-2 to take receipt 2 over")
    assert [(r.seq, r.tries) for r in taken] == [(2, 2)]
    assert await first.heartbeat([1, 2]) == [1]  # 2 is no longer its own
    await first.finish(1, None)
    assert await first.heartbeat([1]) == []


async def test_receipts_and_outcomes_survive_a_crash_of_redis(
    server: OwnRedis, open_queue: Opener
) -> None:
    queue = await open_queue()
    appended = await queue.append(batch(3))
    await queue.claim(limit=10, wait_s=0)
    await queue.finish(2, "gave up")
    await asyncio.to_thread(server.kill)  # SIGKILL: only what was fsynced is left
    await server.astart()
    expected = [appended[0], appended[1].finished("gave up"), appended[2]]
    stored = await queue.receipts(after=0, limit=10, wait_s=0)
    assert [(r.seq, r.request_id, r.done, r.error) for r in stored] == [
        (r.seq, r.request_id, r.done, r.error) for r in expected
    ]
    assert [r.seq for r in await queue.append(batch(1))] == [4]
    restarted = await open_queue()  # the handler that held 1 and 3, restarted: they come first
    claimed = await restarted.claim(limit=10, wait_s=0)
    assert [(r.seq, r.tries) for r in claimed] == [(1, 2), (3, 2), (4, 1)]


async def test_a_wait_longer_than_the_socket_timeout_is_no_outage(open_queue: Opener) -> None:
    queue = await open_queue(timeout_s=0.3)
    assert await queue.receipts(after=0, limit=10, wait_s=0.8) == []
    assert await queue.claim(limit=10, wait_s=0.8) == []


async def test_redis_down_at_open_is_queue_unavailable_naming_the_url_without_password(
    unused_port: int,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{unused_port}/0"
    with pytest.raises(QueueUnavailable) as caught:
        await RedisQueue.open(url, PREFIX, timeout_s=2)
    message = str(caught.value)
    assert message.startswith(f"the pipeline's queue at redis://127.0.0.1:{unused_port}/0 is not")
    assert "hunter2" not in message
    assert "\n" not in message


async def test_an_outage_is_queue_unavailable_and_the_queue_works_again_after(
    server: OwnRedis, open_queue: Opener
) -> None:
    queue = await open_queue()
    await queue.append(batch(1))
    async with server.outage():
        with pytest.raises(QueueUnavailable, match="is not reachable"):
            await queue.append(batch(1))
        with pytest.raises(QueueUnavailable, match="is not reachable"):
            await queue.claim(limit=10, wait_s=0)
    assert [r.seq for r in await queue.append(batch(1))] == [2]


async def test_append_writes_nothing_when_the_counter_disagrees_with_the_stream(
    server: OwnRedis, open_queue: Opener
) -> None:
    queue = await open_queue()
    await queue.append(batch(2))
    client = redis.Redis.from_url(server.url)
    try:
        await client.set(f"{PREFIX}:pipeline:seq", 1)  # behind the stream: seq 2 is taken
        with pytest.raises(redis.ResponseError, match="receipts stream ends at 2-0"):
            await queue.append(batch(3))
        assert await client.xlen(f"{PREFIX}:pipeline:receipts") == 2
    finally:
        await client.aclose()


async def test_a_thousand_finishes_at_once_are_each_recorded_on_a_100_connection_pool(
    open_queue: Opener,
) -> None:
    # A handler finishes as many at once as it processes: one connection each ran the pool
    # dry ("Too many connections") and left outcomes unrecorded until the lease ran out.
    queue = await open_queue()
    receipts = await queue.append(batch(1000))
    assert len(await queue.claim(1000, 0)) == 1000
    await asyncio.gather(*(queue.finish(receipt.seq, None) for receipt in receipts))
    outcomes, _ = await queue.finished("0-0", 2000, 0)
    assert sorted(outcome.seq for outcome in outcomes) == list(range(1, 1001))


async def redis_calls(url: str, command: str) -> int:
    """How often Redis ran ``command`` since it started (INFO commandstats)."""
    client = redis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_claims_under_load_scan_for_idle_work_once_per_third_of_the_lease(
    server: OwnRedis, open_queue: Opener
) -> None:
    queue = await open_queue(lease_s=30.0)
    await queue.append(batch(50))
    for _ in range(50):  # a busy handler: one claim every few milliseconds
        assert len(await queue.claim(1, 0)) == 1
    assert await redis_calls(server.url, "xautoclaim") == 1


async def test_a_batch_of_outcomes_is_one_script_call_and_failures_keep_their_reason(
    server: OwnRedis, open_queue: Opener
) -> None:
    queue = await open_queue()
    receipts = await queue.append(batch(300))
    assert len(await queue.claim(300, 0)) == 300
    before = await redis_calls(server.url, "evalsha")
    reasons = {r.seq: (None if r.seq % 3 else f"gave up {r.seq}") for r in receipts}
    await asyncio.gather(*(queue.finish(seq, why) for seq, why in reasons.items()))
    assert await redis_calls(server.url, "evalsha") - before <= 2  # one, or two if split
    outcomes, _ = await queue.finished("0-0", 1000, 0)
    assert {o.seq: o.error for o in outcomes} == reasons


async def test_forget_drops_tries_outcomes_and_the_feed_read_so_far(
    server: OwnRedis, open_queue: Opener
) -> None:
    queue = await open_queue()
    await queue.append(batch(10))
    assert len(await queue.claim(10, 0)) == 10
    await asyncio.gather(*(queue.finish(seq, None) for seq in range(1, 11)))
    outcomes, mark = await queue.finished("0-0", 6, 0)  # the writer read 6 of the feed
    _, read_through = await queue.finished(mark, 10, 0)  # and then asks from there
    await queue.forget(8)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        keys = {name: f"{PREFIX}:pipeline:{name}" for name in ("tries", "outcomes")}
        assert sorted(await client.hkeys(keys["tries"]), key=int) == ["9", "10"]
        assert sorted(await client.hkeys(keys["outcomes"]), key=int) == ["9", "10"]
        assert await client.xlen(f"{PREFIX}:pipeline:receipts") == 2
        feed = await client.xrange(f"{PREFIX}:pipeline:finished", count=1)
        assert feed
        assert feed[0][0] == mark  # what came before the mark was read, and is gone
    finally:
        await client.aclose()
    assert len(outcomes) == 6
    assert read_through != mark


async def test_an_appends_retry_token_lives_a_minute_not_an_hour(
    server: OwnRedis, open_queue: Opener
) -> None:
    # At 5,000 req/s about 1,200 batches a second: an hour of tokens was 4 million keys.
    queue = await open_queue()
    await queue.append(batch(3))
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        [token] = [key async for key in client.scan_iter(match=f"{PREFIX}:pipeline:batch:*")]
        assert 0 < await client.ttl(token) <= 60
    finally:
        await client.aclose()
