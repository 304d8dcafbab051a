"""The live hub and its feeds: buffers, filters, overflow, and replay merged without gap/dup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from latlab.exporters.base import ProbeTags, StateChange
from latlab.jobs.feeds import READY, FeedEvent, experiment_feed, jobs_feed
from latlab.jobs.live import OVERFLOW, Deleted, LiveEvent, LiveHub, Overflow, Subscription
from latlab.storage import JobState, ProbeResult, Store, open_store

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TAGS = ProbeTags("127.0.0.1", 8008, "/")
SPEC = {"host": "127.0.0.1", "port": 8008, "interval_s": 1, "count": 20}


def result(job_id: int, seq: int) -> ProbeResult:
    at = T0 + timedelta(seconds=seq)
    return ProbeResult(job_id, seq, 200, 1.5, timestamp=at, scheduled_at=at)


def change(job_id: int, state: JobState, kind: str = "probe") -> StateChange:
    return StateChange(kind, job_id, state, None, T0)


async def pending(subscription: Subscription) -> list[LiveEvent | Overflow]:
    """Every event buffered now; a short wait past the last tells "nothing more" apart."""
    events: list[LiveEvent | Overflow] = []
    while True:
        try:
            events.append(await asyncio.wait_for(anext(subscription), 0.05))
        except (TimeoutError, StopAsyncIteration):
            return events


async def test_a_job_subscription_gets_that_job_only() -> None:
    hub = LiveHub(buffer=100)
    with hub.subscribe(("probe", 1)) as one:
        hub.probed(1, TAGS, [result(1, 0), result(1, 1)])
        hub.probed(2, TAGS, [result(2, 0)])
        hub.state_changed(change(1, JobState.RUNNING, kind="bot"))  # bot 1 is another job
        hub.state_changed(change(1, JobState.COMPLETED))
        hub.deleted("probe", 1)
        assert await pending(one) == [
            result(1, 0),
            result(1, 1),
            change(1, JobState.COMPLETED),
            Deleted("probe", 1),
        ]


async def test_the_all_jobs_subscription_gets_states_and_results_only_if_asked() -> None:
    hub = LiveHub(buffer=100)
    with hub.subscribe() as states, hub.subscribe(results=True) as everything:
        hub.probed(1, TAGS, [result(1, 0)])
        hub.state_changed(change(3, JobState.RUNNING, kind="bot"))
        hub.deleted("bot", 3)
        assert await pending(states) == [change(3, JobState.RUNNING, "bot"), Deleted("bot", 3)]
        assert await pending(everything) == [
            result(1, 0),
            change(3, JobState.RUNNING, "bot"),
            Deleted("bot", 3),
        ]


async def test_overflow_drops_the_buffer_tells_once_and_ends() -> None:
    hub = LiveHub(buffer=10)
    with hub.subscribe(("probe", 1)) as slow, hub.subscribe(("probe", 1)) as fast:
        hub.probed(1, TAGS, [result(1, seq) for seq in range(6)])
        assert len(await pending(fast)) == 6
        hub.probed(1, TAGS, [result(1, seq) for seq in range(6, 12)])  # slow: 12 > 10
        assert slow.overflowed
        assert not fast.overflowed
        hub.state_changed(change(1, JobState.COMPLETED))  # dropped for slow, not a wake-up
        assert await pending(slow) == [OVERFLOW]
        assert [getattr(e, "seq", None) for e in await pending(fast)] == [
            *range(6, 12),
            None,
        ]


async def test_a_reader_waiting_is_woken_by_the_overflow() -> None:
    hub = LiveHub(buffer=10)
    with hub.subscribe() as live:
        reader = asyncio.create_task(anext(live))
        await asyncio.sleep(0)  # the reader is waiting now
        for job_id in range(11):
            hub.state_changed(change(job_id, JobState.RUNNING))
        # Woken by the first push, the reader finds the buffer overflowed by the time it runs.
        assert await asyncio.wait_for(reader, 5) is OVERFLOW


async def test_leaving_the_block_unsubscribes() -> None:
    hub = LiveHub(buffer=10)
    with hub.subscribe(("probe", 1)), hub.subscribe(results=True), hub.subscribe():
        assert hub.subscriptions == 3
    assert hub.subscriptions == 0
    hub.probed(1, TAGS, [result(1, 0)])  # nobody left: nothing kept
    hub.state_changed(change(1, JobState.RUNNING))
    assert hub.subscriptions == 0


@pytest.fixture
async def memory_store() -> AsyncIterator[Store]:
    store = await open_store("memory://")
    try:
        yield store
    finally:
        await store.close()


async def commit(store: Store, hub: LiveHub, results: list[ProbeResult]) -> None:
    """What the batch writer does: commit, then publish."""
    await store.checkpoint(results, ())
    hub.probed(results[0].job_id, TAGS, results)


def labels(batch: list[FeedEvent]) -> list[int | str]:
    return [e.seq if isinstance(e, ProbeResult) else type(e).__name__ for e in batch]


async def seqs_until_end(feed: AsyncIterator[list[FeedEvent]]) -> list[int | str]:
    async with asyncio.timeout(5):
        return [label async for batch in feed for label in labels(batch)]


async def test_replay_then_live_has_no_gap_and_no_duplicate(memory_store: Store) -> None:
    hub = LiveHub(buffer=100)
    [job] = await memory_store.create_jobs("probe", [SPEC], state=JobState.RUNNING)
    await memory_store.checkpoint([result(job.id, seq) for seq in range(8)], ())
    feed = experiment_feed(memory_store, hub, job.id, after=4, page=2)
    assert await anext(feed) == [READY]  # subscribed; the store is read at the next step
    # Committed before the feed reads the store but published after it subscribed: both.
    await commit(memory_store, hub, [result(job.id, 8), result(job.id, 9)])
    first = await anext(feed)
    await commit(memory_store, hub, [result(job.id, seq) for seq in range(10, 13)])
    hub.state_changed(change(job.id, JobState.COMPLETED))
    hub.probed(job.id, TAGS, [result(job.id, 13)])  # after the end: never read
    assert labels(first) == [5, 6]  # a page of the replay per batch
    assert await seqs_until_end(feed) == [*range(7, 13), "StateChange"]
    assert hub.subscriptions == 0


async def test_an_experiment_over_already_gets_replay_and_final_state(memory_store: Store) -> None:
    hub = LiveHub(buffer=100)
    [job] = await memory_store.create_jobs("probe", [SPEC], state=JobState.STOPPED)
    await memory_store.checkpoint([result(job.id, seq) for seq in range(3)], ())
    replayed = experiment_feed(memory_store, hub, job.id, after=-1)
    assert await seqs_until_end(replayed) == ["Ready", 0, 1, 2, "StateChange"]
    live = experiment_feed(memory_store, hub, job.id)
    assert await seqs_until_end(live) == ["Ready", "StateChange"]


async def test_a_deleted_experiment_ends_its_feed(memory_store: Store) -> None:
    hub = LiveHub(buffer=100)
    [job] = await memory_store.create_jobs("probe", [SPEC], state=JobState.RUNNING)
    feed = experiment_feed(memory_store, hub, job.id)
    assert await anext(feed) == [READY]
    hub.deleted("probe", job.id)
    assert await seqs_until_end(feed) == ["Deleted"]


async def test_an_overflow_during_replay_stops_it(memory_store: Store) -> None:
    hub = LiveHub(buffer=10)
    [job] = await memory_store.create_jobs("probe", [SPEC], state=JobState.RUNNING)
    await memory_store.checkpoint([result(job.id, seq) for seq in range(20)], ())
    feed = experiment_feed(memory_store, hub, job.id, after=-1, page=5)
    assert await anext(feed) == [READY]
    assert labels(await anext(feed)) == [0, 1, 2, 3, 4]
    for _ in range(11):
        hub.state_changed(change(job.id, JobState.RUNNING))
    # The page read already was sent; the next is not read; the client is told and dropped.
    assert await seqs_until_end(feed) == ["Overflow"]
    assert hub.subscriptions == 0


async def test_the_jobs_feed_is_live_until_closed() -> None:
    hub = LiveHub(buffer=100)
    feed = jobs_feed(hub, results=True)
    assert await anext(feed) == [READY]
    hub.probed(4, TAGS, [result(4, 0)])
    hub.state_changed(change(2, JobState.FAILED, kind="bot"))
    # What is buffered when the reader comes goes out as one batch.
    assert await anext(feed) == [result(4, 0), change(2, JobState.FAILED, kind="bot")]
    await feed.aclose()
    assert hub.subscriptions == 0


async def test_a_batch_gathers_what_arrives_while_it_lingers() -> None:
    hub = LiveHub(buffer=100)
    with hub.subscribe(results=True) as live:
        hub.probed(4, TAGS, [result(4, 0)])
        batch = asyncio.create_task(live.batch(linger_s=0.05))
        await asyncio.sleep(0)  # the reader found one event and lingers for more
        hub.probed(4, TAGS, [result(4, 1), result(4, 2)])
        assert [e.seq for e in await batch if isinstance(e, ProbeResult)] == [0, 1, 2]


async def test_a_batch_stops_lingering_once_the_buffer_is_half_full() -> None:
    """Found by a test that failed on a faster machine: a probe every 5 ms filled a buffer of
    10 within the 50 ms linger, and a client that read as fast as it could was dropped."""
    hub = LiveHub(buffer=10)
    with hub.subscribe(results=True) as live:
        hub.probed(4, TAGS, [result(4, 0)])
        batch = asyncio.create_task(live.batch(linger_s=60))
        await asyncio.sleep(0)  # lingering
        for seq in range(1, 5):
            hub.probed(4, TAGS, [result(4, seq)])
        first = await asyncio.wait_for(batch, 5)
        for seq in range(5, 11):
            hub.probed(4, TAGS, [result(4, seq)])
        second = await asyncio.wait_for(live.batch(linger_s=60), 5)
    assert [e.seq for e in first if isinstance(e, ProbeResult)] == list(range(5))
    assert [e.seq for e in second if isinstance(e, ProbeResult)] == list(range(5, 11))


async def test_an_overflow_while_lingering_ends_the_batches() -> None:
    hub = LiveHub(buffer=4)
    with hub.subscribe(results=True) as live:
        hub.probed(4, TAGS, [result(4, 0)])
        batch = asyncio.create_task(live.batch(linger_s=0.05))
        await asyncio.sleep(0)
        hub.probed(4, TAGS, [result(4, n) for n in range(1, 5)])
        assert await batch == [OVERFLOW]
        assert await live.batch() == []


async def test_results_published_just_before_the_end_are_not_lost(memory_store: Store) -> None:
    """Found in review: the experiment ended between the subscription and the read of its
    state, and the results published meanwhile were dropped for the final state."""
    hub = LiveHub(buffer=100)
    [job] = await memory_store.create_jobs("probe", [SPEC], state=JobState.RUNNING)
    feed = experiment_feed(memory_store, hub, job.id)
    assert await anext(feed) == [READY]
    await commit(memory_store, hub, [result(job.id, 0), result(job.id, 1)])
    await memory_store.set_state("probe", job.id, JobState.COMPLETED, expected={JobState.RUNNING})
    assert await seqs_until_end(feed) == [0, 1, "StateChange"]
