"""In-memory store: the unit-speed twin of the real adapters (``memory://``). Nothing persists."""

from __future__ import annotations

import bisect
import builtins
import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Generic

from latlab.storage.base import JobNotFound, StateConflict
from latlab.storage.records import (
    HistogramUpdate,
    JobRecord,
    JobState,
    Page,
    ProbeResult,
    ProgressUpdate,
    R,
    Record,
    SiteResult,
    by_kind,
    fenced_histograms,
    fenced_records,
    latest_histograms,
    utc_now,
)


def _stored(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as a JSON store keeps it: a deep copy, and a TypeError for what JSON cannot hold."""
    try:
        copied: dict[str, Any] = json.loads(json.dumps(spec))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot store this value: {exc}") from exc
    return copied


class MemoryResults(Generic[R]):
    """One kind's records, per job, by ``seq``. Only a job that exists can hold records."""

    def __init__(self) -> None:
        self._by_job: dict[int, dict[int, R]] = {}

    def open(self, job_id: int) -> None:
        self._by_job[job_id] = {}

    def drop(self, job_id: int) -> None:
        del self._by_job[job_id]

    def add(self, records: Sequence[R]) -> None:
        for record in records:
            if record.job_id in self._by_job:
                self._by_job[record.job_id].setdefault(record.seq, record)

    async def list(
        self, job_id: int, *, offset: int = 0, limit: int | None = None
    ) -> builtins.list[R]:
        by_seq = self._by_job.get(job_id, {})
        seqs = sorted(by_seq)
        start = bisect.bisect_left(seqs, offset)
        end = None if limit is None else start + limit
        return [by_seq[seq] for seq in seqs[start:end]]

    async def count(self, job_id: int) -> int:
        return len(self._by_job.get(job_id, {}))


class MemoryProbeResults(MemoryResults[ProbeResult]):
    async def latencies_ms(self, job_id: int) -> list[float]:
        return [result.latency_ms for result in await self.list(job_id)]


class MemoryHistograms:
    """Payloads per job and bucket: read here, written by ``MemoryStore.checkpoint``."""

    def __init__(self) -> None:
        self._by_job: dict[tuple[str, int], dict[int, str]] = {}

    def put(self, updates: Sequence[HistogramUpdate]) -> None:
        for update in updates:
            stored = self._by_job.setdefault((update.kind, update.job_id), {})
            stored[update.bucket] = update.payload

    def drop(self, kind: str, job_id: int) -> None:
        self._by_job.pop((kind, job_id), None)

    async def read(self, kind: str, job_id: int, first: int, last: int) -> dict[int, str]:
        stored = self._by_job.get((kind, job_id), {})
        return {bucket: stored[bucket] for bucket in sorted(stored) if first <= bucket <= last}


class MemoryStore:
    def __init__(self) -> None:
        # Ids are per kind, so a job is named by (kind, id); records belong to jobs of their kind.
        self._jobs: dict[tuple[str, int], JobRecord] = {}
        self._last_ids: dict[str, int] = {}
        self._values: dict[str, dict[str, Any]] = {}
        self.probe_results = MemoryProbeResults()
        self.site_results = MemoryResults[SiteResult]()
        self.histograms = MemoryHistograms()
        # A new kind of record: its stream here, under its kind.
        self._streams: dict[str, MemoryResults[Any]] = {
            ProbeResult.kind: self.probe_results,
            SiteResult.kind: self.site_results,
        }

    async def create_job(self, kind: str, spec: Mapping[str, Any]) -> JobRecord:
        (job,) = await self.create_jobs(kind, [spec])
        return job

    async def create_jobs(
        self,
        kind: str,
        specs: Sequence[Mapping[str, Any]],
        *,
        state: JobState = JobState.CREATED,
    ) -> list[JobRecord]:
        stored = [_stored(spec) for spec in specs]  # all checked before anything is created
        first_id = self._last_ids.get(kind, 0) + 1
        now = utc_now()
        created = [
            JobRecord(first_id + i, kind, state, spec, {}, None, now, now)
            for i, spec in enumerate(stored)
        ]
        stream = self._streams.get(kind)
        for job in created:
            self._jobs[(kind, job.id)] = job
            if stream is not None:
                stream.open(job.id)
        if created:
            self._last_ids[kind] = created[-1].id
        return created

    async def get_job(self, kind: str, job_id: int) -> JobRecord:
        job = self._jobs.get((kind, job_id))
        if job is None:
            raise JobNotFound(kind, job_id)
        return job

    async def list_jobs(
        self,
        kind: str,
        *,
        states: Collection[JobState] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> Page[JobRecord]:
        found = [
            job
            for job in self._jobs.values()
            if job.kind == kind and (states is None or job.state in states)
        ]
        end = None if limit is None else offset + limit
        return Page(items=found[offset:end], total=len(found))

    async def set_state(
        self,
        kind: str,
        job_id: int,
        state: JobState,
        *,
        expected: Collection[JobState],
        error: str | None = None,
    ) -> JobRecord:
        job = await self.get_job(kind, job_id)
        if job.state not in expected:
            raise StateConflict(job)
        job = dataclasses.replace(job, state=state, error=error, updated_at=utc_now())
        self._jobs[(kind, job_id)] = job
        return job

    async def checkpoint(
        self,
        records: Sequence[Record],
        progress: Sequence[ProgressUpdate],
        histograms: Sequence[HistogramUpdate] = (),
    ) -> set[tuple[str, int]]:
        dropped = self._save_progress(progress)
        for kind, kept in by_kind(fenced_records(records, dropped)).items():
            self._streams[kind].add(kept)
        landing = fenced_histograms(latest_histograms(histograms), dropped)
        self.histograms.put([u for u in landing if (u.kind, u.job_id) in self._jobs])
        return dropped

    def _save_progress(self, progress: Sequence[ProgressUpdate]) -> set[tuple[str, int]]:
        """Apply the updates that pass their fence; return the jobs whose did not, or that
        are gone."""
        dropped: set[tuple[str, int]] = set()
        now = utc_now()
        for update in progress:
            job = self._jobs.get((update.kind, update.job_id))
            if job is None or not update.applies_to(job.progress):
                dropped.add((update.kind, update.job_id))
                continue
            merged = {**job.progress, **update.values}
            self._jobs[(job.kind, job.id)] = dataclasses.replace(
                job, progress=merged, updated_at=now
            )
        return dropped

    async def delete_job(self, kind: str, job_id: int) -> None:
        await self.get_job(kind, job_id)
        del self._jobs[(kind, job_id)]
        if kind in self._streams:
            self._streams[kind].drop(job_id)
        self.histograms.drop(kind, job_id)

    async def get_value(self, key: str) -> dict[str, Any] | None:
        value = self._values.get(key)
        return None if value is None else dict(value)

    async def set_value(self, key: str, value: Mapping[str, Any]) -> None:
        self._values[key] = dict(value)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
