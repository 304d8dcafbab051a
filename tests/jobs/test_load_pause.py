"""A pause or stop of a load run keeps the second in progress: what was sent and answered
is counted, so a resumed -n run sends what is left and no more."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from harness import CountingTarget, running_engine, wait_for
from latlab.exporters.base import LoadSecond
from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_feed import load_run_feed
from latlab.jobs.kinds.load_queries import LoadRunQueries
from latlab.jobs.live import LiveHub
from latlab.jobs.state import Action
from latlab.storage import JobState, Store

CONNECTIONS = 4


async def stored_requests(store: Store, job_id: int) -> int:
    page = await LoadRunQueries(store).seconds(job_id, offset=0, limit=1000)
    return sum(int(row["requests"]) for row in page.items)


async def test_a_paused_run_keeps_its_partial_second_and_resumes_to_exactly_n(
    store: Store,
) -> None:
    fields: dict[str, Any] = {"requests": 3000, "rate": 1000, "connections": CONNECTIONS}
    async with CountingTarget() as target, running_engine(store, [LoadRunner()]) as manager:
        fields["url"] = f"http://127.0.0.1:{target.port}/"
        job = await manager.create("load", {**fields, "workers": 2}, start=True)

        async def one_second() -> bool:
            return int((await store.get_job("load", job.id)).progress.get("seconds", 0)) >= 1

        await wait_for(one_second, 20, "a stored second")
        await asyncio.sleep(0.5)  # into the next second: a pause mid-second
        await manager.act("load", job.id, Action.PAUSE)
        counted = await stored_requests(store, job.id)
        # Everything the target answered is counted, bar what was in flight at the pause.
        assert target.requests - CONNECTIONS <= counted <= target.requests
        await manager.act("load", job.id, Action.RESUME)

        async def over() -> bool:
            return (await store.get_job("load", job.id)).state is JobState.COMPLETED

        await wait_for(over, 20, "the run to complete")
        assert await stored_requests(store, job.id) == 3000
        assert target.requests <= 3000 + CONNECTIONS


async def test_replayed_seconds_keep_when_they_began_across_a_pause(store: Store) -> None:
    fields: dict[str, Any] = {"requests": 1500, "rate": 500, "connections": CONNECTIONS}
    hub = LiveHub()
    async with CountingTarget() as target, running_engine(store, [LoadRunner()]) as manager:
        fields["url"] = f"http://127.0.0.1:{target.port}/"
        job = await manager.create("load", fields, start=True)

        async def one_second() -> bool:
            return int((await store.get_job("load", job.id)).progress.get("seconds", 0)) >= 1

        await wait_for(one_second, 20, "a stored second")
        await manager.act("load", job.id, Action.PAUSE)
        await asyncio.sleep(2.0)  # the gap the replay must show
        await manager.act("load", job.id, Action.RESUME)

        async def over() -> bool:
            return (await store.get_job("load", job.id)).state is JobState.COMPLETED

        await wait_for(over, 20, "the run to complete")
    batches = [batch async for batch in load_run_feed(store, hub, job.id, after=-1)]
    seconds = [event for batch in batches for event in batch if isinstance(event, LoadSecond)]
    starts = [second.at.timestamp() for second in seconds]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) > 0  # in order
    assert max(gaps) >= 2.0  # the pause (numbered on from one start, it would be ~1 s)
