"""Ids under load: large batches, and several stores creating jobs on one database at once."""

from __future__ import annotations

import asyncio

import pytest

from latlab.storage import Store, open_store

pytestmark = pytest.mark.parametrize("store_url", ["sqlite", "postgres", "mongo"], indirect=True)


async def test_ten_thousand_jobs_in_one_call(store: Store) -> None:
    created = await store.create_jobs("probe", [{"n": n} for n in range(10_000)])
    assert [job.id for job in created] == list(range(1, 10_001))
    assert (await store.list_jobs("probe", limit=0)).total == 10_000
    assert (await store.get_job("probe", 10_000)).spec == {"n": 9_999}


async def test_concurrent_creators_never_share_an_id(store: Store, store_url: str) -> None:
    # Separate stores have separate connection pools: as separate processes would, they meet
    # only in the database.
    others = [await open_store(store_url) for _ in range(3)]
    try:
        stores = [store, *others]

        async def create(one: Store) -> list[int]:
            ids: list[int] = []
            for _ in range(10):
                ids += [job.id for job in await one.create_jobs("bot", [{}, {}, {}])]
                ids.append((await one.create_job("bot", {})).id)
            return ids

        created = await asyncio.gather(*(create(one) for one in stores))
    finally:
        for other in others:
            await other.close()
    every_id = sorted(job_id for ids in created for job_id in ids)
    assert every_id == list(range(1, 4 * 10 * 4 + 1))
