"""``MongoStore``: the storage port on MongoDB via pymongo's ``AsyncMongoClient``.

Layout (database ``network_checks`` unless the URL names one): experiments live in
``experiments`` as the original service kept them, other kinds in ``<kind>s``; probe results in
``experiment_results`` (one document per probe: ``mongo_results.py``, a stream per kind), the jobs'
histograms in ``histograms`` (``mongo_histograms.py``); ids come
from the ``counters`` collection, one document ``jobs:<kind>`` per kind, so that they are
integers counted per kind as in every other adapter. A store written before ids were per kind
has one shared ``jobs`` counter: it is left as it is, and a kind's own counter starts from it, so
no id handed out before is handed out again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC
from typing import Any, Self

import bson
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.uri_parser import parse_uri

from latlab.storage.base import JobNotFound, StateConflict
from latlab.storage.mongo_errors import translated as _translated
from latlab.storage.mongo_fence import save_progress
from latlab.storage.mongo_histograms import MongoHistograms
from latlab.storage.mongo_results import (
    Document,
    MongoProbeResults,
    MongoResults,
    MongoSiteResults,
)
from latlab.storage.records import (
    HistogramUpdate,
    JobRecord,
    JobState,
    Page,
    ProbeResult,
    ProgressUpdate,
    Record,
    SiteResult,
    by_kind,
    fenced_histograms,
    fenced_records,
    gone,
    latest_histograms,
    utc_now,
)

DEFAULT_DATABASE = "network_checks"
_COLLECTIONS = {"probe": "experiments"}
_LEGACY_COUNTER = "jobs"
# pymongo waits 30 s for a server by default; an outage should surface sooner than that.
DEFAULT_TIMEOUT_S = 5.0
_TIMEOUT_OPTIONS = ("serverSelectionTimeoutMS", "connectTimeoutMS")


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


class MongoStore:
    def __init__(self, client: AsyncMongoClient[Document], database: AsyncDatabase[Document]):
        self._client = client
        self._db = database
        self.probe_results = MongoProbeResults(database["experiment_results"])
        self.histograms = MongoHistograms(database["histograms"])
        # A new kind of record: its stream here, under its kind.
        self.site_results = MongoSiteResults(database["site_results"])
        self._streams: dict[str, MongoResults[Any]] = {
            ProbeResult.kind: self.probe_results,
            SiteResult.kind: self.site_results,
        }

    @classmethod
    async def open(cls, url: str, timeout_s: float | None = None) -> Self:
        """Connect and create the indexes; wait at most ``timeout_s`` (default 5 s) for a
        server, then raise :class:`StoreUnavailable`, as every later call does too."""
        parsed = parse_uri(url)
        name = parsed.get("database") or DEFAULT_DATABASE
        timeout_ms = int(1000 * (DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s))
        # Keyword options win over the URL's, so only those the URL leaves out are passed.
        timeouts: dict[str, Any] = {
            k: timeout_ms for k in _TIMEOUT_OPTIONS if k not in parsed["options"]
        }
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, tzinfo=UTC, **timeouts
        )
        store = cls(client, client[name])
        try:
            await store._create_indexes()
        except BaseException:
            await client.close()
            raise
        return store

    @_translated
    async def _create_indexes(self) -> None:
        for stream in self._streams.values():
            await stream.create_indexes()
        await self.histograms.create_indexes()

    def _jobs(self, kind: str) -> AsyncCollection[Document]:
        return self._db[_collection_name(kind)]

    async def _reserve_ids(self, kind: str, count: int) -> int:
        """Take ``count`` ids of ``kind`` at once; return the last one."""
        counters = self._db["counters"]
        key = f"jobs:{kind}"
        for _ in range(2):
            taken = await counters.find_one_and_update(
                {"_id": key}, {"$inc": {"seq": count}}, return_document=ReturnDocument.AFTER
            )
            if taken is not None:
                return int(taken["seq"])
            await self._start_counter(key)  # a kind's first job: the counter exists after this
        raise AssertionError(f"counter {key} missing after it was started")

    async def _start_counter(self, key: str) -> None:
        legacy = await self._db["counters"].find_one({"_id": _LEGACY_COUNTER})
        start = 0 if legacy is None else int(legacy["seq"])
        # Another process may have started it first: same start, nothing left to do.
        with contextlib.suppress(DuplicateKeyError):
            await self._db["counters"].insert_one({"_id": key, "seq": start})

    async def create_job(self, kind: str, spec: Mapping[str, Any]) -> JobRecord:
        (job,) = await self.create_jobs(kind, [spec])
        return job

    @_translated
    async def create_jobs(
        self,
        kind: str,
        specs: Sequence[Mapping[str, Any]],
        *,
        state: JobState = JobState.CREATED,
    ) -> list[JobRecord]:
        """All or nothing, without a multi-document transaction (standalone servers have none).

        Specs that BSON cannot hold raise TypeError before any id is taken. Then the ids are
        taken in one step and the jobs written by one ordered ``insert_many``; if that fails,
        the jobs it wrote are deleted again. The ids taken stay used (a gap), and if the server
        is lost between the two writes, some of the jobs may remain until it is back.
        """
        if not specs:
            return []
        docs = [self._new_doc(kind, spec, state) for spec in specs]
        last_id = await self._reserve_ids(kind, len(docs))
        for doc_id, doc in enumerate(docs, start=last_id - len(docs) + 1):
            doc["_id"] = doc_id
        try:
            await self._jobs(kind).insert_many(docs, ordered=True)
        except BaseException:
            # Best effort: in an outage this fails too, and the original error matters more.
            with contextlib.suppress(PyMongoError):
                mine = {"$gte": docs[0]["_id"], "$lte": last_id}  # only this block: others go on
                await self._jobs(kind).delete_many({"_id": mine})
            raise
        return [_job(doc) for doc in docs]

    @staticmethod
    def _new_doc(kind: str, spec: Mapping[str, Any], state: JobState) -> Document:
        try:
            bson.encode({"spec": spec})
        except (bson.errors.InvalidDocument, TypeError, OverflowError) as exc:
            raise TypeError(f"cannot store this value: {exc}") from exc
        now = utc_now()
        return {
            "kind": kind,
            "state": state.value,
            "spec": dict(spec),
            "progress": {},
            "error": None,
            "created_at": now,
            "updated_at": now,
        }

    @_translated
    async def get_job(self, kind: str, job_id: int) -> JobRecord:
        doc = await self._jobs(kind).find_one({"_id": job_id})
        if doc is None:
            raise JobNotFound(kind, job_id)
        return _job(doc)

    @_translated
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

    @_translated
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

    @_translated
    async def checkpoint(
        self,
        records: Sequence[Record],
        progress: Sequence[ProgressUpdate],
        histograms: Sequence[HistogramUpdate] = (),
    ) -> set[tuple[str, int]]:
        """Progress first, each update fenced by its filter, then the records and histograms
        of the jobs that passed (``mongo_fence.py``).

        No multi-document transaction here: a job claimed between its progress and its records
        loses these records and histograms though its progress landed; the new owner redoes
        them (experiments resume from their results). The unique ``(job_id, seq)`` key makes a
        repeated checkpoint harmless, and a histogram is replaced whole.
        """
        latest = latest_histograms(histograms)
        dropped: set[tuple[str, int]] = set()
        found: set[tuple[str, int]] = set()
        now = utc_now()
        for kind in sorted({u.kind for u in progress} | {u.kind for u in latest}):
            updates = [u for u in progress if u.kind == kind]
            with_histograms = {u.job_id for u in latest if u.kind == kind}
            fenced = await save_progress(self._jobs(kind), updates, now, with_histograms)
            dropped |= {(kind, job_id) for job_id in fenced.dropped}
            found |= {(kind, job_id) for job_id in fenced.found}
        dropped |= gone(progress, found)
        for kind, kept in by_kind(fenced_records(records, dropped)).items():
            await self._streams[kind].insert(kept)
        landing = fenced_histograms(latest, dropped)
        await self.histograms.upsert([u for u in landing if (u.kind, u.job_id) in found])
        return dropped

    @_translated
    async def delete_job(self, kind: str, job_id: int) -> None:
        deleted = await self._jobs(kind).delete_one({"_id": job_id})
        if deleted.deleted_count == 0:
            raise JobNotFound(kind, job_id)
        if kind in self._streams:  # records belong to jobs of their kind: a bot has no results
            await self._streams[kind].delete(job_id)
        await self.histograms.delete(kind, job_id)

    @_translated
    async def get_value(self, key: str) -> dict[str, Any] | None:
        doc = await self._db["values"].find_one({"_id": key})
        return None if doc is None else dict(doc["value"])

    @_translated
    async def set_value(self, key: str, value: Mapping[str, Any]) -> None:
        update = {"$set": {"value": dict(value), "updated_at": utc_now()}}
        await self._db["values"].update_one({"_id": key}, update, upsert=True)

    @_translated
    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def close(self) -> None:
        await self._client.close()
