"""The fence of ``MongoStore.checkpoint``: filtered progress updates and reading back who won."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from latlab.storage.mongo_results import Document
from latlab.storage.records import ProgressUpdate

_FLEET_ONLY: Document = {"progress.fleet": True}


def progress_ops(progress: Sequence[ProgressUpdate], now: datetime) -> dict[str, list[UpdateOne]]:
    """One ``UpdateOne`` per update, by kind; a fenced one matches only its owner's job."""
    by_kind: dict[str, list[UpdateOne]] = {}
    for update in progress:
        if not update.values:
            continue  # only a fence for records: fenced_out reads the owner back
        query: Document = {"_id": update.job_id}
        if update.owner is not None:  # null also matches a missing field: "no owner yet"
            query["progress.fleet"] = {"$in": [update.owner, None]}
        fields = {f"progress.{key}": value for key, value in update.values.items()}
        op = UpdateOne(query, {"$set": {**fields, "updated_at": now}})
        by_kind.setdefault(update.kind, []).append(op)
    return by_kind


def _expected_owners(kind: str, progress: Sequence[ProgressUpdate]) -> dict[int, Any]:
    """The owner each fenced job of ``kind`` has now if its update matched."""
    return {
        u.job_id: u.values.get("fleet", u.owner)
        for u in progress
        if u.kind == kind and u.owner is not None
    }


def _owned_as_expected(doc: Document, expected: Mapping[int, Any]) -> bool:
    fleet = doc.get("progress", {}).get("fleet")
    return fleet is None or fleet == expected[doc["_id"]]


async def fenced_out(
    jobs: AsyncCollection[Document],
    kind: str,
    progress: Sequence[ProgressUpdate],
    with_records: Collection[int],
) -> set[tuple[str, int]]:
    """Of the jobs of ``kind`` with records in the call (``jobs`` is their collection), those
    whose fenced update did not match."""
    owners = _expected_owners(kind, progress)
    expected = {job_id: owners[job_id] for job_id in with_records if job_id in owners}
    if not expected:
        return set()
    cursor = jobs.find({"_id": {"$in": list(expected)}}, _FLEET_ONLY)
    return {(kind, doc["_id"]) async for doc in cursor if not _owned_as_expected(doc, expected)}
