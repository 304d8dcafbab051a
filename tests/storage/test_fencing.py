"""The owner fence of ``checkpoint``, on every adapter and through the batch writer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from conftest import STORE_KINDS
from latlab.storage import ProbeResult, Store, open_store
from latlab.storage.records import ProgressUpdate
from latlab.storage.writer import BatchWriter, FencedOut

EVERY_STORE = pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
# Two store objects on one backend: only real backends are shared between them.
SHARED_STORES = pytest.mark.parametrize(
    "store_url", [kind for kind in STORE_KINDS if kind != "memory"], indirect=True
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def result(job_id: int, seq: int) -> ProbeResult:
    return ProbeResult(job_id, seq, 200, 1.5, T0, T0)


def probe(job_id: int, values: dict[str, object], owner: str | None = None) -> ProgressUpdate:
    return ProgressUpdate("probe", job_id, dict(values), owner)


async def owned_by(store: Store, owner: str, count: int = 1) -> list[int]:
    jobs = await store.create_jobs("probe", [{}] * count)
    await store.checkpoint([], [probe(job.id, {"fleet": owner}) for job in jobs])
    return [job.id for job in jobs]


@EVERY_STORE
async def test_a_stale_owners_checkpoint_is_dropped_and_the_current_owners_lands(
    store: Store,
) -> None:
    taken, kept = await owned_by(store, "B", 1) + await owned_by(store, "A", 1)
    await store.checkpoint([result(taken, 39)], [probe(taken, {"done": 40}, "B")])
    results = [result(taken, 6), result(kept, 0), result(taken, 40)]
    updates = [probe(taken, {"done": 7, "fleet": "A"}, "A"), probe(kept, {"done": 1}, "A")]
    await store.checkpoint(results, updates)
    assert (await store.get_job("probe", taken)).progress == {"fleet": "B", "done": 40}
    assert [r.seq for r in await store.probe_results.list(taken)] == [39]
    assert (await store.get_job("probe", kept)).progress == {"fleet": "A", "done": 1}
    assert await store.probe_results.count(kept) == 1


@EVERY_STORE
async def test_results_without_an_update_of_their_job_are_not_fenced(store: Store) -> None:
    (taken,) = await owned_by(store, "B")
    await store.checkpoint([result(taken, 0)], [])
    assert await store.probe_results.count(taken) == 1


@EVERY_STORE
async def test_a_dropped_update_of_another_kind_keeps_the_probes_results(store: Store) -> None:
    (probe_id,) = await owned_by(store, "A")
    bot = await store.create_job("bot", {})
    assert bot.id == probe_id
    await store.checkpoint([], [ProgressUpdate("bot", bot.id, {"fleet": "B"})])
    stale_bot = ProgressUpdate("bot", bot.id, {"number": 3}, "A")
    await store.checkpoint([result(probe_id, 0)], [stale_bot])
    assert (await store.get_job("bot", bot.id)).progress == {"fleet": "B"}
    assert await store.probe_results.count(probe_id) == 1


@EVERY_STORE
async def test_an_owned_update_applies_to_a_job_with_no_owner_yet(store: Store) -> None:
    job = await store.create_job("probe", {})
    await store.checkpoint([result(job.id, 0)], [probe(job.id, {"done": 1}, "A")])
    assert (await store.get_job("probe", job.id)).progress == {"done": 1}
    assert await store.probe_results.count(job.id) == 1


@EVERY_STORE
async def test_an_unconditional_update_applies_and_can_change_the_owner(store: Store) -> None:
    (job_id,) = await owned_by(store, "A")
    await store.checkpoint([result(job_id, 0)], [probe(job_id, {"fleet": "B", "done": 1})])
    assert (await store.get_job("probe", job_id)).progress == {"fleet": "B", "done": 1}
    assert await store.probe_results.count(job_id) == 1
    await store.checkpoint([], [probe(job_id, {"done": 2}, "B")])
    await store.checkpoint([result(job_id, 1)], [probe(job_id, {"done": 9}, "A")])
    assert (await store.get_job("probe", job_id)).progress == {"fleet": "B", "done": 2}
    assert await store.probe_results.count(job_id) == 1


@EVERY_STORE
async def test_updates_of_one_job_in_one_call_apply_in_order(store: Store) -> None:
    (job_id,) = await owned_by(store, "A")
    claim = probe(job_id, {"fleet": "B"})
    await store.checkpoint([], [claim, probe(job_id, {"done": 1}, "A")])
    assert (await store.get_job("probe", job_id)).progress == {"fleet": "B"}
    await store.checkpoint([], [probe(job_id, {"done": 2}, "B"), probe(job_id, {"x": 1}, "B")])
    assert (await store.get_job("probe", job_id)).progress == {"fleet": "B", "done": 2, "x": 1}


@EVERY_STORE
async def test_the_writer_merge_is_unconditional_if_a_claim_is_in_it(store: Store) -> None:
    (job_id,) = await owned_by(store, "B")
    async with BatchWriter(store, delay_s=0.05) as writer:
        await asyncio.gather(
            writer.write([], [probe(job_id, {"fleet": "A"})]),
            writer.write([result(job_id, 0)], [probe(job_id, {"done": 1}, "A")]),
        )
    assert (await store.get_job("probe", job_id)).progress == {"fleet": "A", "done": 1}
    assert await store.probe_results.count(job_id) == 1


@EVERY_STORE
async def test_queued_updates_of_two_owners_are_each_fenced_by_their_own(store: Store) -> None:
    """A stale owner's update queued beside the owner's own no longer lands under the
    owner's fence (it did when the writer merged them under the newest owner)."""
    (job_id,) = await owned_by(store, "C")
    async with BatchWriter(store, delay_s=0.05) as writer:
        stale, own = await asyncio.gather(
            writer.write([], [probe(job_id, {"x": 1}, "A")]),
            writer.write([result(job_id, 0)], [probe(job_id, {"y": 2}, "C")]),
            return_exceptions=True,
        )
    assert isinstance(stale, FencedOut)  # the stale writer hears of it, and halts
    assert own is None
    assert (await store.get_job("probe", job_id)).progress == {"fleet": "C", "y": 2}
    assert await store.probe_results.count(job_id) == 1


@EVERY_STORE
async def test_the_writer_fences_every_chunk_of_a_large_batch(store: Store) -> None:
    taken, kept = await owned_by(store, "B", 1) + await owned_by(store, "A", 1)
    async with BatchWriter(store, max_results=2, delay_s=0.05) as writer:
        outcomes = await asyncio.gather(
            *(
                writer.write([result(job_id, seq) for seq in range(5)], [probe(job_id, {}, "A")])
                for job_id in (taken, kept)
            ),
            return_exceptions=True,
        )
    assert [type(outcome).__name__ for outcome in outcomes] == ["FencedOut", "NoneType"]
    assert await store.probe_results.count(taken) == 0
    assert await store.probe_results.count(kept) == 5


@SHARED_STORES
async def test_concurrent_checkpoints_of_one_job_lose_no_key(store: Store, store_url: str) -> None:
    (job_id,) = await owned_by(store, "A")
    other = await open_store(store_url)
    try:
        await asyncio.gather(
            *(
                (store, other)[n % 2].checkpoint([], [probe(job_id, {f"k{n}": n}, "A")])
                for n in range(40)
            )
        )
    finally:
        await other.close()
    progress = (await store.get_job("probe", job_id)).progress
    assert progress == {"fleet": "A", **{f"k{n}": n for n in range(40)}}


@EVERY_STORE
async def test_each_owners_records_go_under_its_own_fence_whatever_the_order(
    store: Store,
) -> None:
    """Found in review: with two owners' updates of a job queued at once, every record went
    under the last update's fence: a stale owner's landed, or the owner's own was dropped."""
    stale_first, owner_first = await owned_by(store, "C", 2)
    async with BatchWriter(store, delay_s=0.05) as writer:
        outcomes = await asyncio.gather(
            writer.write([result(stale_first, 0)], [probe(stale_first, {"x": 1}, "A")]),
            writer.write([], [probe(stale_first, {"y": 2}, "C")]),
            writer.write([result(owner_first, 0)], [probe(owner_first, {"done": 1}, "C")]),
            writer.write([], [probe(owner_first, {"x": 1}, "A")]),
            return_exceptions=True,
        )
    refused = [isinstance(outcome, FencedOut) for outcome in outcomes]
    assert refused == [True, False, False, True]  # the stale owner's writes, and only they
    assert (await store.get_job("probe", stale_first)).progress == {"fleet": "C", "y": 2}
    assert await store.probe_results.count(stale_first) == 0
    assert (await store.get_job("probe", owner_first)).progress == {"fleet": "C", "done": 1}
    assert await store.probe_results.count(owner_first) == 1
