"""A load run's live feed: stored seconds replayed, then live ones, no gap, no duplicate."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import pytest

from latlab.exporters.base import LoadTags
from latlab.jobs.events import Events
from latlab.jobs.feeds import READY, FeedEvent, change_of
from latlab.jobs.kinds.load_feed import (
    COUNTING_FROM_KEY,
    SECONDS_KEY,
    load_run_feed,
    load_second_of,
    nothing_after_second,
)
from latlab.jobs.live import LiveHub
from latlab.measure.load.seconds import SecondStats, SecondTally
from latlab.storage import HistogramUpdate, JobState
from latlab.storage.memory import MemoryStore
from latlab.storage.records import ProgressUpdate

TAGS = LoadTags("127.0.0.1", 8008, "/")
BEGAN_S = time.time()


def stats(number: int) -> SecondStats:
    tally = SecondTally()
    tally.latency_us[1000 + number] = number + 1
    return tally.stats(number, open_model=False)


async def store_seconds(store: MemoryStore, run_id: int, count: int) -> None:
    updates = [HistogramUpdate("load", run_id, n, stats(n).to_payload()) for n in range(count)]
    progress = {SECONDS_KEY: count, COUNTING_FROM_KEY: BEGAN_S}
    await store.checkpoint([], [ProgressUpdate("load", run_id, progress)], updates)


async def next_batch(feed: AsyncGenerator[list[FeedEvent], None]) -> list[FeedEvent]:
    return await feed.__anext__()


async def test_stored_seconds_are_replayed_then_only_unseen_live_ones_follow() -> None:
    store, hub = MemoryStore(), LiveHub()
    run = await store.create_job("load", {})
    run = await store.set_state("load", run.id, JobState.RUNNING, expected={JobState.CREATED})
    await store_seconds(store, run.id, 3)
    feed = load_run_feed(store, hub, run.id, after=0)
    assert await next_batch(feed) == [READY]
    replayed = await next_batch(feed)
    assert [event.second for event in replayed] == [1, 2]  # type: ignore[union-attr]
    assert replayed[0] == load_second_of(run.id, stats(1), BEGAN_S)
    events = Events([hub])
    events.load_second(TAGS, load_second_of(run.id, stats(2), BEGAN_S))  # replayed already
    events.load_second(TAGS, load_second_of(run.id, stats(3), BEGAN_S))
    live = await next_batch(feed)
    assert [event.second for event in live] == [3]  # type: ignore[union-attr]
    ended = await store.set_state("load", run.id, JobState.COMPLETED, expected={JobState.RUNNING})
    events.state_changed(ended)
    assert await next_batch(feed) == [change_of(ended)]
    assert [batch async for batch in feed] == []


async def test_a_run_that_is_over_gets_its_seconds_and_its_end_then_nothing() -> None:
    store, hub = MemoryStore(), LiveHub()
    run = await store.create_job("load", {})
    await store.set_state("load", run.id, JobState.RUNNING, expected={JobState.CREATED})
    await store_seconds(store, run.id, 2)
    run = await store.set_state("load", run.id, JobState.STOPPED, expected={JobState.RUNNING})
    batches = [batch async for batch in load_run_feed(store, hub, run.id, after=-1)]
    assert [len(batch) for batch in batches] == [1, 2, 1]
    assert nothing_after_second(run, 1)
    assert not nothing_after_second(run, 0)
    began = load_second_of(run.id, stats(1), BEGAN_S).at.timestamp()
    assert began == pytest.approx(BEGAN_S + 1, abs=1e-6)
