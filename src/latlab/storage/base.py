"""The storage port: what every store adapter must do, and the errors it raises.

Split by what it holds: :class:`JobStore` (job records and named values), one
:class:`ResultStream` per kind of record (:class:`ProbeResults` for probes), the jobs'
:class:`Histograms`, and :class:`Store`, the composition the app opens: a ``JobStore`` with its
streams and histograms as typed attributes, the one ``checkpoint`` that writes records of any
kind and histograms with progress, ``ping`` and ``close``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

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
)


class StoreError(Exception):
    """Base of the errors a store raises on purpose."""


class JobNotFound(StoreError):
    def __init__(self, kind: str, job_id: int) -> None:
        super().__init__(f"{kind} job {job_id} not found")
        self.kind = kind
        self.job_id = job_id


class StoreUnavailable(StoreError):
    """The backend cannot be reached right now (connection refused, lost or timed out).

    Every adapter raises this, and only this, for an outage, so callers can wait and retry
    (jobs) or answer 503 (the API) without knowing the driver.
    """


class StateConflict(StoreError):
    """A compare-and-set on a job's state found another state than expected."""

    def __init__(self, job: JobRecord) -> None:
        super().__init__(f"job {job.id} is {job.state}")
        self.job = job


class JobStore(Protocol):
    """Jobs of every kind and small named values. Ids are integers handed out by the store."""

    async def create_job(self, kind: str, spec: Mapping[str, Any]) -> JobRecord: ...

    async def create_jobs(
        self,
        kind: str,
        specs: Sequence[Mapping[str, Any]],
        *,
        state: JobState = JobState.CREATED,
    ) -> list[JobRecord]:
        """Create every job in one transaction (all or nothing), ids ascending in ``specs`` order.

        Ids are handed out per kind: the first bot is 1 whatever number of experiments exist.
        """
        ...

    async def get_job(self, kind: str, job_id: int) -> JobRecord:
        """Return the job or raise :class:`JobNotFound`."""
        ...

    async def list_jobs(
        self,
        kind: str,
        *,
        states: Collection[JobState] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> Page[JobRecord]:
        """Jobs of one kind by ascending id, optionally only those in ``states``."""
        ...

    async def set_state(
        self,
        kind: str,
        job_id: int,
        state: JobState,
        *,
        expected: Collection[JobState],
        error: str | None = None,
    ) -> JobRecord:
        """Move a job to ``state`` if it is in one of ``expected``, else :class:`StateConflict`."""
        ...

    async def delete_job(self, kind: str, job_id: int) -> None:
        """Delete a job with its records (those of its kind) and histograms, or raise
        :class:`JobNotFound`."""
        ...

    async def get_value(self, key: str) -> dict[str, Any] | None:
        """A small named document (heartbeats, markers), or None if never set."""
        ...

    async def set_value(self, key: str, value: Mapping[str, Any]) -> None:
        """Create or replace the document named ``key``."""
        ...


class ResultStream(Protocol[R]):
    """The records of one kind, per job, numbered by ``seq`` from 0 with no gaps.

    Read-only: records are written by :meth:`Store.checkpoint`, fenced with the progress.
    """

    async def list(self, job_id: int, *, offset: int = 0, limit: int | None = None) -> list[R]:
        """Records by ascending ``seq``, starting at ``seq == offset``."""
        ...

    async def count(self, job_id: int) -> int: ...


class ProbeResults(ResultStream[ProbeResult], Protocol):
    """The probe results of experiments (jobs of kind ``probe``)."""

    async def latencies_ms(self, job_id: int) -> list[float]:
        """Latency of every probe of a job, ``-1`` for failed ones, in ``seq`` order."""
        ...


class Histograms(Protocol):
    """Mergeable latency histograms per job and time bucket, so that stats cost a few reads.

    Read-only, as streams are: written by :meth:`Store.checkpoint`, fenced with the progress.
    """

    async def read(self, kind: str, job_id: int, first: int, last: int) -> dict[int, str]:
        """The job's stored payloads with ``first <= bucket <= last``, by ascending bucket.

        Empty if there are none; never another job's or another kind's.
        """
        ...


class Store(JobStore, Protocol):
    """What the app opens: the jobs, a stream per kind of record, the jobs' histograms, and the
    checkpoint over all of them."""

    @property
    def probe_results(self) -> ProbeResults: ...

    @property
    def site_results(self) -> ResultStream[SiteResult]:
        """The results of the series of experiments run at several locations."""
        ...

    @property
    def histograms(self) -> Histograms: ...

    async def checkpoint(
        self,
        records: Sequence[Record],
        progress: Sequence[ProgressUpdate],
        histograms: Sequence[HistogramUpdate] = (),
    ) -> set[tuple[str, int]]:
        """Store records of any kind (idempotent on ``(job_id, seq)`` within their kind),
        histograms and progress, in one transaction; return the jobs (``(kind, id)``) whose
        owned update failed its fence, or that no longer exist (empty normally).

        Each update's values are merged into the job's progress (newest keys win); an update
        of a job that does not exist (deleted meanwhile) is ignored, and the call's records
        of that job are dropped with it, never failing the rest of the call. Updates are
        fenced by owner: one whose ``owner`` is set applies only if the job's
        ``progress.get("fleet")`` is ``owner`` or not set yet (missing or None), checked
        atomically with the write. If it does not apply, it is dropped, and so is every
        record in this call of that job (a record belongs to the job of its ``kind``: probe
        results to probe jobs); the rest of the call commits, and nothing is raised.
        ``owner=None`` applies unconditionally: a claim naming a new owner (``{"fleet":
        new_owner}``) is written that way. Several updates of one job in one call apply in
        order.

        Each histogram update replaces the payload of its ``(kind, job_id, bucket)`` (the last
        one wins if a call has several). It is fenced like a record: dropped if its job's
        update in this call failed the fence; one of a job that does not exist is ignored.
        """
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""
        ...

    async def close(self) -> None: ...
