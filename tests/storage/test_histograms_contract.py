"""The histograms contract, on every adapter: upserts, ranges, the owner fence, deletes.

Histograms are written by ``checkpoint`` beside records and progress, and fenced like records.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from store_samples import probe_result as result

from conftest import STORE_KINDS
from latlab.storage import TOTAL_BUCKET, HistogramUpdate, Record, Store, open_store
from latlab.storage.records import ProgressUpdate
from latlab.storage.writer import BatchWriter

EVERY_STORE = pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
SQL_STORES = pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
SHARED_STORES = pytest.mark.parametrize(
    "store_url", [kind for kind in STORE_KINDS if kind != "memory"], indirect=True
)


def hist(job_id: int, bucket: int, payload: str, kind: str = "probe") -> HistogramUpdate:
    return HistogramUpdate(kind, job_id, bucket, payload)


def probe(job_id: int, values: dict[str, object], owner: str | None = None) -> ProgressUpdate:
    return ProgressUpdate("probe", job_id, dict(values), owner)


async def owned_by(store: Store, owner: str) -> int:
    job = await store.create_job("probe", {})
    await store.checkpoint([], [probe(job.id, {"fleet": owner})])
    return job.id


async def read_all(store: Store, job_id: int, kind: str = "probe") -> dict[int, str]:
    return await store.histograms.read(kind, job_id, TOTAL_BUCKET, 2**62)


@EVERY_STORE
async def test_an_update_replaces_the_stored_payload(store: Store) -> None:
    job = await store.create_job("probe", {})
    first = [hist(job.id, TOTAL_BUCKET, "a"), hist(job.id, 5, "x")]
    assert await store.checkpoint([], [], first) == set()
    assert await read_all(store, job.id) == {TOTAL_BUCKET: "a", 5: "x"}
    await store.checkpoint([], [], [hist(job.id, TOTAL_BUCKET, "b")])
    await store.checkpoint([], [], [hist(job.id, 5, "y"), hist(job.id, 5, "z")])  # last wins
    assert await read_all(store, job.id) == {TOTAL_BUCKET: "b", 5: "z"}


@EVERY_STORE
async def test_reads_are_inclusive_ordered_and_per_job_and_kind(store: Store) -> None:
    job, other = await store.create_jobs("probe", [{}, {}])
    bot = await store.create_job("bot", {})
    assert bot.id == job.id
    minute = 2**40  # past 32 bits: buckets are big integers
    buckets = [minute + n for n in (3, 0, 4, 1, 2)]
    await store.checkpoint([], [], [hist(job.id, b, f"p{b - minute}") for b in buckets])
    await store.checkpoint(
        [], [], [hist(other.id, minute + 1, "other"), hist(bot.id, minute + 1, "bot", "bot")]
    )
    found = await store.histograms.read("probe", job.id, minute + 1, minute + 3)
    assert list(found.items()) == [(minute + 1, "p1"), (minute + 2, "p2"), (minute + 3, "p3")]
    assert await store.histograms.read("probe", job.id, minute + 5, minute + 9) == {}
    assert await store.histograms.read("probe", job.id, TOTAL_BUCKET, TOTAL_BUCKET) == {}
    assert await read_all(store, other.id) == {minute + 1: "other"}
    assert await read_all(store, bot.id, "bot") == {minute + 1: "bot"}


@EVERY_STORE
async def test_checkpoint_returns_no_job_when_every_fence_passes(store: Store) -> None:
    job_id = await owned_by(store, "A")
    fresh = await store.create_job("probe", {})
    updates = [probe(job_id, {"done": 1}, "A"), probe(fresh.id, {"done": 1}, "A")]
    histograms = [hist(job_id, TOTAL_BUCKET, "a"), hist(fresh.id, TOTAL_BUCKET, "f")]
    assert await store.checkpoint([result(job_id, 0)], updates, histograms) == set()
    assert await read_all(store, job_id) == {TOTAL_BUCKET: "a"}
    assert await read_all(store, fresh.id) == {TOTAL_BUCKET: "f"}


@EVERY_STORE
async def test_a_stale_owners_histograms_are_dropped_and_the_job_named(store: Store) -> None:
    taken, kept = await owned_by(store, "B"), await owned_by(store, "A")
    await store.checkpoint([], [probe(taken, {"done": 1}, "B")], [hist(taken, TOTAL_BUCKET, "B")])
    records = [result(taken, 1), result(kept, 0)]
    updates = [probe(taken, {"done": 2}, "A"), probe(kept, {"done": 1}, "A")]
    histograms = [hist(taken, TOTAL_BUCKET, "stale"), hist(kept, TOTAL_BUCKET, "fresh")]
    assert await store.checkpoint(records, updates, histograms) == {("probe", taken)}
    assert await read_all(store, taken) == {TOTAL_BUCKET: "B"}
    assert await read_all(store, kept) == {TOTAL_BUCKET: "fresh"}
    assert await store.probe_results.count(taken) == 0
    assert await store.probe_results.count(kept) == 1


@EVERY_STORE
async def test_a_failed_fence_only_update_is_named_too(store: Store) -> None:
    taken = await owned_by(store, "B")
    dropped = await store.checkpoint([], [probe(taken, {}, "A")], [hist(taken, 7, "stale")])
    assert dropped == {("probe", taken)}
    assert await read_all(store, taken) == {}


@EVERY_STORE
async def test_histograms_without_an_update_of_their_job_are_not_fenced(store: Store) -> None:
    taken = await owned_by(store, "B")
    assert await store.checkpoint([], [], [hist(taken, 7, "h")]) == set()
    assert await read_all(store, taken) == {7: "h"}


@EVERY_STORE
async def test_a_claim_in_the_same_call_lets_histograms_land(store: Store) -> None:
    job_id = await owned_by(store, "A")
    claim = probe(job_id, {"fleet": "B"})
    assert await store.checkpoint([], [claim], [hist(job_id, TOTAL_BUCKET, "B")]) == set()
    assert await read_all(store, job_id) == {TOTAL_BUCKET: "B"}


@EVERY_STORE
async def test_histograms_of_a_missing_job_are_ignored(store: Store) -> None:
    job = await store.create_job("probe", {})
    missing = probe(999, {"done": 1}, "A")
    histograms = [hist(job.id, 1, "kept"), hist(999, 1, "gone"), hist(job.id, 1, "bot", "bot")]
    assert await store.checkpoint([], [missing], histograms) == {("probe", 999)}
    assert await read_all(store, job.id) == {1: "kept"}
    assert await read_all(store, 999) == {}
    bot = await store.create_job("bot", {})  # the id the ignored histogram named
    assert bot.id == job.id
    assert await read_all(store, bot.id, "bot") == {}


@EVERY_STORE
async def test_delete_job_removes_its_histograms_only(store: Store) -> None:
    job = await store.create_job("probe", {})
    bot = await store.create_job("bot", {})
    await store.checkpoint([], [], [hist(job.id, TOTAL_BUCKET, "p"), hist(bot.id, 3, "b", "bot")])
    await store.delete_job("probe", job.id)
    assert await read_all(store, job.id) == {}
    assert await read_all(store, bot.id, "bot") == {3: "b"}


@EVERY_STORE
async def test_a_large_payload_round_trips(store: Store) -> None:
    job = await store.create_job("probe", {})
    payload = json.dumps({"unit": "µs", "counts": list(range(40_000))})
    assert len(payload) > 200_000
    await store.checkpoint([], [], [hist(job.id, TOTAL_BUCKET, payload)])
    assert await read_all(store, job.id) == {TOTAL_BUCKET: payload}


@EVERY_STORE
async def test_the_writer_fences_histograms_and_reports_only_landed_records(
    store: Store,
) -> None:
    taken, kept = await owned_by(store, "B"), await owned_by(store, "A")
    landed: list[Record] = []
    async with BatchWriter(store, max_results=2, delay_s=0.05, committed=landed.extend) as writer:
        outcomes = await asyncio.gather(
            *(
                writer.write(
                    [result(job_id, seq) for seq in range(5)],
                    [probe(job_id, {"done": 5}, "A")],
                    [hist(job_id, TOTAL_BUCKET, f"h{job_id}")],
                )
                for job_id in (taken, kept)
            ),
            return_exceptions=True,
        )
    assert [type(outcome).__name__ for outcome in outcomes] == ["FencedOut", "NoneType"]
    assert sorted((r.job_id, r.seq) for r in landed) == [(kept, seq) for seq in range(5)]
    assert await read_all(store, taken) == {}
    assert await read_all(store, kept) == {TOTAL_BUCKET: f"h{kept}"}


@SHARED_STORES
async def test_concurrent_upserts_of_one_histogram_do_not_fail(
    store: Store, store_url: str
) -> None:
    job_id = await owned_by(store, "A")
    other = await open_store(store_url)
    try:
        await asyncio.gather(
            *(
                (store, other)[n % 2].checkpoint(
                    [], [probe(job_id, {"n": n}, "A")], [hist(job_id, TOTAL_BUCKET, f"p{n}")]
                )
                for n in range(20)
            )
        )
    finally:
        await other.close()
    assert (await read_all(store, job_id))[TOTAL_BUCKET] in {f"p{n}" for n in range(20)}


@SQL_STORES
async def test_a_job_deleted_during_checkpoints_leaves_no_histogram(
    store: Store, store_url: str
) -> None:
    """SQL only: checkpoints lock the histograms' jobs, so a delete cannot leave orphans."""
    other = await open_store(store_url)
    try:
        for _ in range(5):
            job = await store.create_job("probe", {})
            writes = [other.checkpoint([], [], [hist(job.id, bucket, "h")]) for bucket in range(6)]
            await asyncio.gather(*writes[:3], store.delete_job("probe", job.id), *writes[3:])
            assert await read_all(store, job.id) == {}
    finally:
        await other.close()
