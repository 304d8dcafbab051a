"""The fence of ``MongoStore.checkpoint``: filtered progress updates and reading back who won.

No multi-document transaction: each update is one ``UpdateOne`` whose filter is the fence, so
check and write are atomic per document. When every update of a kind matched, the call knows
each of those jobs exists and passed; only what it cannot know that way (fence-only updates,
a kind with an update that did not match, histograms of jobs without an update) is read back,
in one query per kind.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from latlab.storage.mongo_results import Document
from latlab.storage.records import ProgressUpdate

_FLEET_ONLY: Document = {"progress.fleet": True}


@dataclass(frozen=True)
class Fenced:
    """Of one kind's jobs: those whose fenced update did not apply, and those known to exist."""

    dropped: set[int]
    found: set[int]


def _ops(updates: Sequence[ProgressUpdate], now: datetime) -> list[UpdateOne]:
    """One ``UpdateOne`` per update with values; a fenced one matches only its owner's job."""
    ops: list[UpdateOne] = []
    for update in updates:
        if not update.values:
            continue  # only a fence for records: its owner is read back
        query: Document = {"_id": update.job_id}
        if update.owner is not None:  # null also matches a missing field: "no owner yet"
            query["progress.fleet"] = {"$in": [update.owner, None]}
        fields = {f"progress.{key}": value for key, value in update.values.items()}
        ops.append(UpdateOne(query, {"$set": {**fields, "updated_at": now}}))
    return ops


def _expected_owners(updates: Sequence[ProgressUpdate]) -> dict[int, Any]:
    """The owner each fenced job has now if its update matched."""
    return {u.job_id: u.values.get("fleet", u.owner) for u in updates if u.owner is not None}


def _owned_as_expected(doc: Document, expected: Mapping[int, Any]) -> bool:
    fleet = doc.get("progress", {}).get("fleet")
    return fleet is None or fleet == expected[doc["_id"]]


async def save_progress(
    jobs: AsyncCollection[Document],
    updates: Sequence[ProgressUpdate],
    now: datetime,
    also_find: Collection[int] = (),
) -> Fenced:
    """Write one kind's ``updates`` (``jobs`` is their collection) in order; say which were
    fenced out, and which of their jobs and of ``also_find`` exist (every update's job that
    matched none is looked up)."""
    ops = _ops(updates, now)
    matched_all = True
    if ops:
        result = await jobs.bulk_write(ops, ordered=True)  # one job's updates in order
        matched_all = result.matched_count == len(ops)
    owners = _expected_owners(updates)
    known = {u.job_id for u in updates if u.values} if matched_all else set()
    fence_only = {u.job_id for u in updates if u.owner is not None and not u.values}
    # A job not matched may be gone: looked up so that its records are dropped too.
    updated = {u.job_id for u in updates}
    unsure = (set(owners) - (known - fence_only)) | ((set(also_find) | updated) - known)
    if not unsure:
        return Fenced(set(), known)
    cursor = jobs.find({"_id": {"$in": sorted(unsure)}}, _FLEET_ONLY)
    docs = {doc["_id"]: doc async for doc in cursor}
    fenced = {job_id: doc for job_id, doc in docs.items() if job_id in owners}
    dropped = {job_id for job_id, doc in fenced.items() if not _owned_as_expected(doc, owners)}
    return Fenced(dropped, known | set(docs))
