"""Result streams on MongoDB: one class per kind of record, each in its own collection.

One document per record (never an unbounded embedded array), with a unique index on
``(job_id, seq)``.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Generic

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from latlab.storage.mongo_errors import translated
from latlab.storage.records import ProbeResult, R, SiteResult

Document = dict[str, Any]
_DUPLICATE_KEY = 11000


class MongoResults(Generic[R]):
    """One kind's records in ``collection``: read here, written by ``MongoStore.checkpoint``."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        record: Callable[..., R],
        fields: Sequence[str],
    ) -> None:
        self._collection = collection
        self._record = record
        self._fields = fields

    async def create_indexes(self) -> None:
        key = [("job_id", ASCENDING), ("seq", ASCENDING)]
        await self._collection.create_index(key, unique=True)

    async def insert(self, records: Sequence[R]) -> None:
        """Write ``records``; those already stored are kept."""
        docs = [{field: getattr(r, field) for field in self._fields} for r in records]
        try:
            await self._collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            # A record redone after a crash is already stored: that is the point of the key.
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise

    async def delete(self, job_id: int) -> None:
        await self._collection.delete_many({"job_id": job_id})

    @translated
    async def list(
        self, job_id: int, *, offset: int = 0, limit: int | None = None
    ) -> builtins.list[R]:
        # seq has no gaps, so a page starts at seq == offset: an index seek, never a skip.
        query = {"job_id": job_id, "seq": {"$gte": offset}}
        cursor = self._collection.find(query).sort("seq", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        return [self._from_doc(doc) async for doc in cursor]

    def _from_doc(self, doc: Document) -> R:
        doc.pop("_id", None)
        return self._record(**doc)

    @translated
    async def count(self, job_id: int) -> int:
        return await self._collection.count_documents({"job_id": job_id})


class MongoProbeResults(MongoResults[ProbeResult]):
    """Probe results, in ``experiment_results`` (the original service's collection)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        fields = [field.name for field in dataclasses.fields(ProbeResult)]
        super().__init__(collection, ProbeResult, fields)

    @translated
    async def latencies_ms(self, job_id: int) -> list[float]:
        projection = {"latency_ms": True, "_id": False}
        cursor = self._collection.find({"job_id": job_id}, projection).sort("seq", ASCENDING)
        return [float(doc["latency_ms"]) async for doc in cursor]


class MongoSiteResults(MongoResults[SiteResult]):
    """The results of experiments' series at one location each, in ``site_results``."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        fields = [field.name for field in dataclasses.fields(SiteResult)]
        super().__init__(collection, SiteResult, fields)
