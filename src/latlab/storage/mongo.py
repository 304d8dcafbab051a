"""``MongoStore``: the storage port on MongoDB via pymongo's ``AsyncMongoClient``.

Layout (database ``network_checks`` unless the URL names one): experiments live in
``experiments`` as the original service kept them, other kinds in ``<kind>s``; results in
``experiment_results`` (one document per probe, never an unbounded embedded array); ids come
from the ``counters`` collection so that they are integers as in every other adapter.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC
from typing import Any, Self

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from pymongo.uri_parser import parse_uri

from latlab.storage.base import JobNotFound, StateConflict
from latlab.storage.records import (
    JobRecord,
    JobState,
    Page,
    ProbeResult,
    ProgressUpdate,
    utc_now,
)

Document = dict[str, Any]
DEFAULT_DATABASE = "network_checks"
_COLLECTIONS = {"probe": "experiments"}
_DUPLICATE_KEY = 11000


def _collection_name(kind: str) -> str:
    return _COLLECTIONS.get(kind, f"{kind}s")


def _job(doc: Document) -> JobRecord:
    return JobRecord(
        id=doc["_id"],
        kind=doc["kind"],
        state=JobState(doc["state"]),
        spec=doc["spec"],
        progress=doc.get("progress", {}),
        error=doc.get("error"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def _result(doc: Document) -> ProbeResult:
    doc.pop("_id", None)
    return ProbeResult(**doc)


class MongoStore:
    def __init__(self, client: AsyncMongoClient[Document], database: AsyncDatabase[Document]):
        self._client = client
        self._db = database
        self._results: AsyncCollection[Document] = database["experiment_results"]

    @classmethod
    async def open(cls, url: str) -> Self:
        name = parse_uri(url).get("database") or DEFAULT_DATABASE
        client: AsyncMongoClient[Document] = AsyncMongoClient(url, tz_aware=True, tzinfo=UTC)
        store = cls(client, client[name])
        try:
            await store._results.create_index(
                [("job_id", ASCENDING), ("seq", ASCENDING)], unique=True
            )
        except BaseException:
            await client.close()
            raise
        return store

    def _jobs(self, kind: str) -> AsyncCollection[Document]:
        return self._db[_collection_name(kind)]

    async def _next_id(self) -> int:
        counter = await self._db["counters"].find_one_and_update(
            {"_id": "jobs"}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert counter is not None  # upsert with AFTER always returns the document
        return int(counter["seq"])

    async def create_job(self, kind: str, spec: Mapping[str, Any]) -> JobRecord:
        now = utc_now()
        doc: Document = {
            "_id": await self._next_id(),
            "kind": kind,
            "state": JobState.CREATED.value,
            "spec": dict(spec),
            "progress": {},
            "error": None,
            "created_at": now,
            "updated_at": now,
        }
        await self._jobs(kind).insert_one(doc)
        return _job(doc)

    async def get_job(self, kind: str, job_id: int) -> JobRecord:
        doc = await self._jobs(kind).find_one({"_id": job_id})
        if doc is None:
            raise JobNotFound(kind, job_id)
        return _job(doc)

    async def list_jobs(
        self,
        kind: str,
        *,
        states: Collection[JobState] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> Page[JobRecord]:
        query: Document = {} if states is None else {"state": {"$in": [s.value for s in states]}}
        cursor = self._jobs(kind).find(query).sort("_id", ASCENDING).skip(offset)
        if limit is not None:
            cursor = cursor.limit(limit)
        items = [_job(doc) async for doc in cursor]
        total = await self._jobs(kind).count_documents(query)
        return Page(items=items, total=total)

    async def set_state(
        self,
        kind: str,
        job_id: int,
        state: JobState,
        *,
        expected: Collection[JobState],
        error: str | None = None,
    ) -> JobRecord:
        doc = await self._jobs(kind).find_one_and_update(
            {"_id": job_id, "state": {"$in": [s.value for s in expected]}},
            {"$set": {"state": state.value, "error": error, "updated_at": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise StateConflict(await self.get_job(kind, job_id))
        return _job(doc)

    async def checkpoint(
        self,
        results: Sequence[ProbeResult],
        progress: Sequence[ProgressUpdate],
    ) -> None:
        # MongoDB has no cheap multi-document transaction here; the unique (job_id, seq) key
        # makes results idempotent, so writing results before progress is safe to repeat.
        if results:
            await self._insert_results(results)
        now = utc_now()
        by_kind: dict[str, list[UpdateOne]] = {}
        for update in progress:
            fields = {f"progress.{key}": value for key, value in update.values.items()}
            op = UpdateOne({"_id": update.job_id}, {"$set": {**fields, "updated_at": now}})
            by_kind.setdefault(update.kind, []).append(op)
        for kind, ops in by_kind.items():
            await self._jobs(kind).bulk_write(ops, ordered=False)

    async def _insert_results(self, results: Sequence[ProbeResult]) -> None:
        docs = [{field: getattr(r, field) for field in r.__slots__} for r in results]
        try:
            await self._results.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            # A probe redone after a crash is already stored: that is the point of the key.
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise

    async def delete_job(self, kind: str, job_id: int) -> None:
        deleted = await self._jobs(kind).delete_one({"_id": job_id})
        if deleted.deleted_count == 0:
            raise JobNotFound(kind, job_id)
        await self._results.delete_many({"job_id": job_id})

    async def list_results(
        self, job_id: int, *, offset: int = 0, limit: int | None = None
    ) -> list[ProbeResult]:
        # seq has no gaps, so a page starts at seq == offset: an index seek, never a skip.
        query = {"job_id": job_id, "seq": {"$gte": offset}}
        cursor = self._results.find(query).sort("seq", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        return [_result(doc) async for doc in cursor]

    async def count_results(self, job_id: int) -> int:
        return await self._results.count_documents({"job_id": job_id})

    async def latencies_ms(self, job_id: int) -> list[float]:
        cursor = self._results.find({"job_id": job_id}, {"latency_ms": True, "_id": False}).sort(
            "seq", ASCENDING
        )
        return [float(doc["latency_ms"]) async for doc in cursor]

    async def get_value(self, key: str) -> dict[str, Any] | None:
        doc = await self._db["values"].find_one({"_id": key})
        return None if doc is None else dict(doc["value"])

    async def set_value(self, key: str, value: Mapping[str, Any]) -> None:
        update = {"$set": {"value": dict(value), "updated_at": utc_now()}}
        await self._db["values"].update_one({"_id": key}, update, upsert=True)

    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def close(self) -> None:
        await self._client.close()
