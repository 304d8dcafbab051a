"""The pipeline queue's contract, on every adapter: SQL on SQLite and on the local
PostgreSQL, and Redis Streams on the local Redis (each test under a prefix of its own).

A queue opened a second time on the same data is a restart (``reopen``). A reader that an
append must wake waits ``WAIT_S``; it has to be back well before (``WOKEN_S``).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from latlab.pipeline.queue import Outcome, PipelineQueue, QueueUnavailable, open_queue
from latlab.pipeline.queue.redis import RedisQueue
from latlab.pipeline.queue.sql import SqlQueue
from latlab.pipeline.receipts import Incoming, Receipt
from pipeline_files import Reopen
from services import drop_redis_keys, require_redis

WAIT_S = 30.0
WOKEN_S = 10.0


def batch(n: int) -> list[Incoming]:
    start = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
    return [
        Incoming(str(uuid.uuid4()), 0.125 * i, start + timedelta(microseconds=1001 * i), run)
        for i, run in zip(range(n), ["run-7", None] * n, strict=False)
    ]


def as_incoming(receipt: Receipt) -> Incoming:
    return Incoming(receipt.request_id, receipt.delay_s, receipt.receive_time, receipt.run_id)


@pytest.fixture
async def queue(reopen: Reopen) -> PipelineQueue:
    return await reopen()


async def _all_outcomes(queue: PipelineQueue, mark: str) -> list[Outcome]:
    found: list[Outcome] = []
    while True:
        outcomes, mark = await queue.finished(mark, limit=7, wait_s=0)
        if not outcomes:
            return found
        found += outcomes


async def test_append_numbers_receipts_1_to_n_in_order_across_batches(
    queue: PipelineQueue,
) -> None:
    first = await queue.append(batch(3))
    second = await queue.append(batch(2))
    assert [receipt.seq for receipt in first + second] == [1, 2, 3, 4, 5]


async def test_append_returns_what_was_given_untried_and_unfinished(queue: PipelineQueue) -> None:
    given = batch(2)
    receipts = await queue.append(given)
    assert [as_incoming(receipt) for receipt in receipts] == given
    assert [(r.tries, r.done, r.error) for r in receipts] == [(0, False, None)] * 2


async def test_an_empty_batch_takes_no_number(queue: PipelineQueue) -> None:
    assert await queue.append([]) == []
    assert [receipt.seq for receipt in await queue.append(batch(1))] == [1]


async def test_concurrent_appends_share_one_numbering_without_gaps(queue: PipelineQueue) -> None:
    batches = [batch(3) for _ in range(8)]
    appended = await asyncio.gather(*(queue.append(given) for given in batches))
    for receipts in appended:  # a batch keeps its order, in one run of numbers
        assert [r.seq for r in receipts] == list(range(receipts[0].seq, receipts[0].seq + 3))
    stored = await queue.receipts(after=0, limit=100, wait_s=0)
    assert [r.seq for r in stored] == list(range(1, 25))
    assert stored == sorted((r for receipts in appended for r in receipts), key=lambda r: r.seq)


async def test_receipts_after_returns_the_later_ones_in_order_up_to_limit(
    queue: PipelineQueue,
) -> None:
    appended = await queue.append(batch(5))
    assert await queue.receipts(after=1, limit=3, wait_s=0) == appended[1:4]
    assert await queue.receipts(after=5, limit=3, wait_s=0) == []


async def test_receipts_return_nothing_after_wait_s_when_none_comes(queue: PipelineQueue) -> None:
    await queue.append(batch(1))
    assert await queue.receipts(after=1, limit=10, wait_s=0.2) == []


async def test_an_append_wakes_a_waiting_reader(queue: PipelineQueue) -> None:
    await queue.append(batch(1))
    reader = asyncio.create_task(queue.receipts(after=1, limit=10, wait_s=WAIT_S))
    await asyncio.sleep(0)  # let it start reading: a reader that comes late finds it anyway
    new = await queue.append(batch(2))
    assert await asyncio.wait_for(reader, WOKEN_S) == new


async def test_claim_hands_each_receipt_out_once(queue: PipelineQueue) -> None:
    await queue.append(batch(3))
    first = await queue.claim(limit=2, wait_s=0)
    rest = await queue.claim(limit=10, wait_s=0)
    assert [(r.seq, r.tries) for r in first + rest] == [(1, 1), (2, 1), (3, 1)]
    assert await queue.claim(limit=10, wait_s=0) == []


async def test_an_append_wakes_a_waiting_claim(queue: PipelineQueue) -> None:
    claim = asyncio.create_task(queue.claim(limit=10, wait_s=WAIT_S))
    await asyncio.sleep(0)
    await queue.append(batch(1))
    assert [r.seq for r in await asyncio.wait_for(claim, WOKEN_S)] == [1]


async def test_claim_skips_finished_receipts(queue: PipelineQueue) -> None:
    await queue.append(batch(3))
    await queue.finish(2, None)
    assert [r.seq for r in await queue.claim(limit=10, wait_s=0)] == [1, 3]


async def test_finish_is_recorded_once(queue: PipelineQueue) -> None:
    await queue.append(batch(2))
    mark = await queue.mark()
    await queue.finish(1, None)
    await queue.finish(1, "too late")
    await queue.finish(2, "gave up")
    await queue.finish(2, None)
    assert await _all_outcomes(queue, mark) == [Outcome(1, None), Outcome(2, "gave up")]
    stored = await queue.receipts(after=0, limit=10, wait_s=0)
    assert [(r.done, r.error) for r in stored] == [(True, None), (True, "gave up")]


async def test_concurrent_finishes_are_each_recorded(queue: PipelineQueue) -> None:
    await queue.append(batch(20))
    mark = await queue.mark()
    await asyncio.gather(*(queue.finish(seq, None) for seq in range(1, 21)))
    assert sorted(outcome.seq for outcome in await _all_outcomes(queue, mark)) == list(range(1, 21))


async def test_finished_feeds_the_outcomes_after_the_mark_in_the_order_recorded(
    queue: PipelineQueue,
) -> None:
    await queue.append(batch(4))
    await queue.finish(3, None)
    mark = await queue.mark()
    await queue.finish(1, "gave up")
    await queue.finish(4, None)
    outcomes, mark = await queue.finished(mark, limit=1, wait_s=0)
    assert outcomes == [Outcome(1, "gave up")]
    outcomes, mark = await queue.finished(mark, limit=10, wait_s=0)
    assert outcomes == [Outcome(4, None)]
    assert await queue.finished(mark, limit=10, wait_s=0) == ([], mark)


async def test_a_mark_taken_before_an_outcome_sees_it(queue: PipelineQueue) -> None:
    await queue.append(batch(1))
    mark = await queue.mark()
    feed = asyncio.create_task(queue.finished(mark, limit=10, wait_s=WAIT_S))
    await asyncio.sleep(0)
    await queue.finish(1, None)
    outcomes, _ = await asyncio.wait_for(feed, WOKEN_S)
    assert outcomes == [Outcome(1, None)]


async def test_receipts_carry_their_outcome_once_finished(queue: PipelineQueue) -> None:
    await queue.append(batch(3))
    await queue.finish(1, None)
    await queue.finish(3, "bad gateway")
    stored = await queue.receipts(after=0, limit=10, wait_s=0)
    assert [(r.done, r.error) for r in stored] == [
        (True, None),
        (False, None),
        (True, "bad gateway"),
    ]


async def test_a_restart_hands_out_the_unfinished_receipts_again_with_one_more_try(
    queue: PipelineQueue, reopen: Reopen
) -> None:
    await queue.append(batch(3))
    await queue.claim(limit=10, wait_s=0)
    await queue.finish(2, None)
    restarted = await reopen()  # the first one is not closed: it crashed
    again = await restarted.claim(limit=10, wait_s=0)
    assert [(r.seq, r.tries) for r in again] == [(1, 2), (3, 2)]
    assert await restarted.claim(limit=10, wait_s=0) == []


async def test_a_restart_numbers_on_and_keeps_outcomes(
    queue: PipelineQueue, reopen: Reopen
) -> None:
    await queue.append(batch(2))
    await queue.finish(1, "gave up")
    restarted = await reopen()
    assert [r.seq for r in await restarted.append(batch(1))] == [3]
    stored = await restarted.receipts(after=0, limit=10, wait_s=0)
    assert [(r.seq, r.done, r.error) for r in stored] == [
        (1, True, "gave up"),
        (2, False, None),
        (3, False, None),
    ]


async def _finished_in_order(queue: PipelineQueue, count: int) -> None:
    """``count`` receipts outside any run (the SQL store keeps a run's until the run has a
    row), each finished in seq order."""
    await queue.append([replace(incoming, run_id=None) for incoming in batch(count)])
    assert len(await queue.claim(limit=count, wait_s=0)) == count
    for seq in range(1, count + 1):
        await queue.finish(seq, None)


async def test_forget_drops_the_written_receipts_and_nothing_after(queue: PipelineQueue) -> None:
    await _finished_in_order(queue, 5)
    await queue.forget(3)
    await queue.forget(2)  # behind: changes nothing
    stored = await queue.receipts(after=0, limit=10, wait_s=0)
    assert [(r.seq, r.done) for r in stored] == [(4, True), (5, True)]


async def test_forget_keeps_the_newest_receipt_so_a_restart_numbers_on(
    queue: PipelineQueue, reopen: Reopen
) -> None:
    await _finished_in_order(queue, 3)
    await queue.forget(3)
    assert [r.seq for r in await queue.receipts(after=0, limit=10, wait_s=0)] == [3]
    restarted = await reopen()
    assert [r.seq for r in await restarted.append(batch(1))] == [4]
    assert [r.seq for r in await restarted.claim(limit=10, wait_s=0)] == [4]


async def test_open_queue_picks_redis_when_configured_else_the_sql_store(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'latlab.db'}"
    sql = await open_queue(redis_url=None, storage_url=sqlite_url, redis_prefix="x")
    prefix = f"latlab-test-{secrets.token_hex(4)}"
    in_redis = await open_queue(
        redis_url=require_redis(), storage_url="memory://", redis_prefix=prefix
    )
    try:
        assert (type(sql), type(in_redis)) == (SqlQueue, RedisQueue)
    finally:
        await sql.close()
        await in_redis.close()
        await drop_redis_keys(require_redis(), prefix)


@pytest.mark.parametrize("storage_url", ["memory://", "mongodb://127.0.0.1:1/latlab"])
async def test_open_queue_refuses_a_store_that_is_not_sql(storage_url: str) -> None:
    with pytest.raises(QueueUnavailable, match=r"needs an SQL store .* or LATLAB_REDIS_URL"):
        await open_queue(redis_url=None, storage_url=storage_url, redis_prefix="x")
