"""Dispatch over Redis streams (taskiq's broker and message format, our receiving loop)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from latlab.coordination.dispatch import Dispatcher, Handling, receive
from latlab.coordination.streams import Lane, stream_name
from services import drop_redis_keys, require_redis

Got = list[tuple[str, int]]


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"dispatch-{secrets.token_hex(4)}"
    yield prefix
    await drop_redis_keys(require_redis(), prefix)


@pytest.fixture
async def dispatcher(prefix: str) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(require_redis(), prefix)
    yield dispatcher
    await dispatcher.close()


def receiving(
    prefix: str,
    run: Callable[[str, int], Awaitable[None]],
    *,
    lane: Lane = "heavy",
    location: str = "eu-1",
    slots: int = 4,
    handling: Handling | None = None,
    consumer: str = "c",
) -> asyncio.Task[None]:
    work = receive(
        require_redis(),
        prefix,
        lane=lane,
        location=location,
        consumer=consumer,
        handling=handling or Handling(slots),
        run=run,
    )
    return asyncio.create_task(work)


async def holding_one(prefix: str) -> tuple[int, asyncio.Event, asyncio.Task[None]]:
    """A worker at eu-1 (so reading eu-1's stream and any's) with one slot, holding the job
    it takes until released: that job, the release, the receiving task."""
    release, first = asyncio.Event(), asyncio.Queue[int]()

    async def hold(_kind: str, job_id: int) -> None:
        first.put_nowait(job_id)
        await release.wait()

    busy = receiving(prefix, hold, slots=1)
    return await asyncio.wait_for(first.get(), 10), release, busy


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done, "the receiving loop did not end when cancelled"


def recorder(got: Got, until: int) -> tuple[Callable[[str, int], Awaitable[None]], asyncio.Event]:
    enough = asyncio.Event()

    async def run(kind: str, job_id: int) -> None:
        got.append((kind, job_id))
        if len(got) >= until:
            enough.set()

    return run, enough


async def test_a_job_dispatched_before_any_worker_listens_is_still_run(
    prefix: str, dispatcher: Dispatcher
) -> None:
    await dispatcher.dispatch("probe", 1)  # the consumer group starts at 0, not at "$"
    got: Got = []
    run, enough = recorder(got, 1)
    task = receiving(prefix, run)
    await asyncio.wait_for(enough.wait(), 10)
    await stopped(task)
    assert got == [("probe", 1)]


async def test_a_worker_reads_its_location_and_any_but_not_another_location(
    prefix: str, dispatcher: Dispatcher
) -> None:
    got: Got = []
    run, enough = recorder(got, 2)
    task = receiving(prefix, run, location="eu-1")
    await dispatcher.dispatch("probe", 1, "us-1")
    await dispatcher.dispatch("probe", 2, "eu-1")
    await dispatcher.dispatch("probe", 3)
    await asyncio.wait_for(enough.wait(), 10)
    await stopped(task)
    assert sorted(got) == [("probe", 2), ("probe", 3)]
    redis = aioredis.Redis.from_url(require_redis())
    try:
        assert await redis.xlen(stream_name(prefix, "heavy", "us-1")) == 1  # left for us-1
    finally:
        await redis.aclose()


async def test_bots_go_to_the_light_lane(prefix: str, dispatcher: Dispatcher) -> None:
    got: Got = []
    run, enough = recorder(got, 1)
    light = receiving(prefix, run, lane="light")
    await dispatcher.dispatch("bot", 9)
    await asyncio.wait_for(enough.wait(), 10)
    await stopped(light)
    assert got == [("bot", 9)]


async def test_no_more_jobs_are_taken_than_there_are_slots(
    prefix: str, dispatcher: Dispatcher
) -> None:
    release, started = asyncio.Event(), asyncio.Queue[int]()

    async def run(_kind: str, job_id: int) -> None:
        started.put_nowait(job_id)
        await release.wait()

    task = receiving(prefix, run, slots=2)
    for job_id in (1, 2, 3):
        await dispatcher.dispatch("probe", job_id)
    first_two = {await asyncio.wait_for(started.get(), 10) for _ in range(2)}
    redis = aioredis.Redis.from_url(require_redis())
    try:
        groups = await redis.xinfo_groups(stream_name(prefix, "heavy", "any"))
    finally:
        await redis.aclose()
    release.set()
    third = await asyncio.wait_for(started.get(), 10)
    await stopped(task)
    assert first_two == {1, 2}
    assert third == 3
    assert groups[0]["lag"] == 1  # the third stayed in the stream for a worker with room


async def test_the_loop_stops_when_cancelled_after_running_jobs(
    prefix: str, dispatcher: Dispatcher
) -> None:
    """taskiq 0.13's own Receiver never finished its cancellation once it had run a task."""
    got: Got = []
    run, enough = recorder(got, 3)
    task = receiving(prefix, run)
    for job_id in (1, 2, 3):
        await dispatcher.dispatch("probe", job_id)
    await asyncio.wait_for(enough.wait(), 10)
    await stopped(task)


async def test_a_message_that_is_not_a_job_is_skipped_and_reading_goes_on(
    prefix: str, dispatcher: Dispatcher
) -> None:
    redis = aioredis.Redis.from_url(require_redis())
    try:
        stream = stream_name(prefix, "heavy", "eu-1")
        await redis.xadd(stream, {b"data": b'{"task_name": "other", "args": []}'})
        await redis.xadd(stream, {b"data": b"not json"})
    finally:
        await redis.aclose()
    got: Got = []
    run, enough = recorder(got, 1)
    task = receiving(prefix, run)
    await dispatcher.dispatch("probe", 5, "eu-1")
    await asyncio.wait_for(enough.wait(), 10)
    await stopped(task)
    assert got == [("probe", 5)]


async def test_a_restarted_reading_loop_keeps_the_room_and_the_calls_under_way(
    prefix: str, dispatcher: Dispatcher
) -> None:
    """Found in review: a reading loop restarted after a Redis error made a new room of
    ``slots`` (taking more jobs than the capacity) and cancelled the calls under way."""
    release, started, cancelled = asyncio.Event(), asyncio.Queue[int](), []

    async def run(_kind: str, job_id: int) -> None:
        started.put_nowait(job_id)
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(job_id)
            raise

    handling = Handling(1)
    first = receiving(prefix, run, handling=handling)
    await dispatcher.dispatch("probe", 1)
    assert await asyncio.wait_for(started.get(), 10) == 1
    await stopped(first)  # as a Redis error ends it; supervision starts it again
    again = receiving(prefix, run, handling=handling)
    await dispatcher.dispatch("probe", 2)
    still_full = handling.free.locked()
    release.set()
    assert await asyncio.wait_for(started.get(), 10) == 2
    await stopped(again)
    await handling.close()
    assert still_full
    assert cancelled == []


async def test_a_read_of_two_streams_keeps_one_job_and_gives_the_other_back(
    prefix: str, dispatcher: Dispatcher
) -> None:
    """Found in review: a worker at a location reads its stream and ``any`` in one call,
    which returns a job from each; with one slot it held the second until its first ended,
    and no worker with room could take it."""
    await dispatcher.dispatch("probe", 1, "eu-1")
    await dispatcher.dispatch("probe", 2)  # any location
    held, release, busy = await holding_one(prefix)
    got: Got = []
    run, enough = recorder(got, 1)
    with_room = receiving(prefix, run, location="any", slots=1, consumer="d")
    await asyncio.wait_for(enough.wait(), 10)
    release.set()
    await stopped(with_room)
    await stopped(busy)
    assert {held, got[0][1]} == {1, 2}


async def test_of_two_jobs_read_at_once_the_older_is_kept(
    prefix: str, dispatcher: Dispatcher
) -> None:
    """Found in review: the location's job was always the one kept, so while a location had
    a backlog its workers sent ``any``'s jobs back again and again."""
    await dispatcher.dispatch("probe", 1)  # any location, first
    await asyncio.sleep(0.005)  # entry ids order by the millisecond they were added in
    await dispatcher.dispatch("probe", 2, "eu-1")
    held, release, busy = await holding_one(prefix)
    release.set()
    await stopped(busy)
    assert held == 1
