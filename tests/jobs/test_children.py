"""What a parent job waits for from its children: a new drain mark, not a cleared one."""

from __future__ import annotations

import dataclasses

from latlab.jobs.kinds.children import DRAINED_KEY, drained_since
from latlab.storage import JobState, open_store


async def test_a_cleared_mark_is_no_drain_and_a_new_one_or_an_end_is() -> None:
    """Found in review: a shard's new attempt clears its mark (None) before it sends; a stop
    that had read the old mark took the cleared one for a drain and merged too early."""
    store = await open_store("memory://")
    try:
        child = await store.create_job("load_shard", {"run": 1, "index": 0})
    finally:
        await store.close()
    running = dataclasses.replace(child, state=JobState.RUNNING)

    def at(mark: object, state: JobState = JobState.RUNNING) -> bool:
        with_mark = dataclasses.replace(running, state=state, progress={DRAINED_KEY: mark})
        return drained_since(with_mark, 1.0)

    assert not at(1.0)  # the mark read before the stop
    assert not at(None)  # cleared by a new attempt: it is sending, not drained
    assert at(2.0)
    assert at(None, JobState.COMPLETED)
