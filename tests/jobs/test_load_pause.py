"""A pause or stop of a load run keeps the second in progress: what was sent and answered
is counted, so a resumed -n run sends what is left and no more."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import CountingTarget, running_engine, wait_for
from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_queries import LoadRunQueries
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
