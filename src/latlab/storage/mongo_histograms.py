"""Per-job histograms on MongoDB: one document per ``(kind, job_id, bucket)`` in ``histograms``.

A unique index on the three is both the upsert's key and the read's index range.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from latlab.storage.mongo_errors import translated
from latlab.storage.mongo_results import Document
from latlab.storage.records import HistogramUpdate

_KEY = [("kind", ASCENDING), ("job_id", ASCENDING), ("bucket", ASCENDING)]


class MongoHistograms:
    """Read here, written (replaced) by ``MongoStore.checkpoint``."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def create_indexes(self) -> None:
        await self._collection.create_index(_KEY, unique=True)

    async def upsert(self, updates: Sequence[HistogramUpdate]) -> None:
        """Replace each update's document (one update per key: ``latest_histograms``)."""
        if not updates:
            return
        ops = [
            UpdateOne(
                {"kind": u.kind, "job_id": u.job_id, "bucket": u.bucket},
                {"$set": {"payload": u.payload}},
                upsert=True,
            )
            for u in updates
        ]
        await self._collection.bulk_write(ops, ordered=False)

    async def delete(self, kind: str, job_id: int) -> None:
        await self._collection.delete_many({"kind": kind, "job_id": job_id})

    @translated
    async def read(self, kind: str, job_id: int, first: int, last: int) -> dict[int, str]:
        query = {"kind": kind, "job_id": job_id, "bucket": {"$gte": first, "$lte": last}}
        projection = {"_id": False, "bucket": True, "payload": True}
        cursor = self._collection.find(query, projection).sort("bucket", ASCENDING)
        return {int(doc["bucket"]): str(doc["payload"]) async for doc in cursor}
