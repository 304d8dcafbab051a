"""Group commit: many jobs checkpoint at once, the store sees one transaction per batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from latlab.storage.base import Store
from latlab.storage.creations import GroupCreator
from latlab.storage.records import (
    HistogramUpdate,
    JobRecord,
    JobState,
    ProgressUpdate,
    Record,
    fenced_records,
)

log = logging.getLogger("latlab.storage")
Committed = Callable[[Sequence[Record]], None]
JobKey = tuple[str, int]


class FencedOut(Exception):
    """The checkpoint of a job was refused by its fence: another process holds the job now
    (it was handed on while this one was frozen or cut off), or it was deleted. The job must
    halt here; what it wrote with that checkpoint did not land."""

    def __init__(self, jobs: Sequence[JobKey]) -> None:
        self.jobs = tuple(jobs)
        named = ", ".join(f"{kind} job {job_id}" for kind, job_id in self.jobs)
        super().__init__(f"checkpoint refused, held elsewhere now (or deleted): {named}")


class BatchWriter:
    """Collects checkpoints from every job and writes them in batches.

    ``write`` returns once its data is committed, so a job never runs ahead of its checkpoint;
    the wait is shielded, so a job cancelled mid-write still leaves its data written. Records
    of every kind share a batch; the store sends each kind to its stream. Histogram updates
    travel with the progress, in the batch's last checkpoint call.

    ``committed`` is called once a batch has committed whole, with the records that landed
    (those fenced out are left out; never with none), e.g. to fold them into in-memory stats;
    what it raises is logged, never passed on. A write whose job's update failed its fence
    raises :class:`FencedOut`, so that the job halts instead of going on unheard.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_results: int = 500,
        delay_s: float = 0.002,
        committed: Committed | None = None,
    ) -> None:
        self._store = store
        self._max_results = max_results
        self._delay_s = delay_s
        self._committed = committed
        self._records: list[Record] = []
        self._in_flight = 0  # records of the batch being committed, not committed yet
        self._last_commit: float | None = None
        # Per job, its queued update: of one owner per batch (see write).
        self._progress: dict[tuple[str, int], ProgressUpdate] = {}
        self._histograms: dict[tuple[str, int, int], HistogramUpdate] = {}
        self._waiters: list[tuple[asyncio.Future[None], frozenset[JobKey]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._creations = GroupCreator(store)

    async def create_jobs(
        self, kind: str, specs: Sequence[Mapping[str, Any]], *, state: JobState
    ) -> list[JobRecord]:
        """``store.create_jobs``, sharing one transaction with concurrent creates of the kind."""
        return await self._creations.create_jobs(kind, specs, state)

    @property
    def queue_depth(self) -> int:
        """Records queued or being written, not committed yet (a metric)."""
        return len(self._records) + self._in_flight

    @property
    def last_commit_age_s(self) -> float | None:
        """Seconds since the last successful checkpoint call; None before the first (a metric)."""
        if self._last_commit is None:
            return None
        return time.monotonic() - self._last_commit

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="latlab-batch-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._creations.close()
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def write(
        self,
        records: Sequence[Record] = (),
        progress: Sequence[ProgressUpdate] = (),
        histograms: Sequence[HistogramUpdate] = (),
    ) -> None:
        """Queue a checkpoint and wait until it is committed (or raise the store's error).

        Queued histogram updates of one ``(kind, job_id, bucket)`` replace each other: the
        newest wins, as it would in the store.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("BatchWriter is not running")
        while self._other_owner_queued(progress):
            # One owner per job in a batch: its records and histograms are fenced by its
            # update, so another owner's queued checkpoint (a claim's, fenced by the owner
            # it takes over from) commits first. Its error is its writer's to hear.
            with contextlib.suppress(Exception):
                await self.flush()
        self._records.extend(records)
        for update in progress:
            key = (update.kind, update.job_id)
            old = self._progress.get(key)
            self._progress[key] = update if old is None else _merged(old, update)
        for histogram in histograms:
            self._histograms[histogram.kind, histogram.job_id, histogram.bucket] = histogram
        waiter = asyncio.get_running_loop().create_future()
        # A waiter whose job was cancelled still gets its error; mark it seen so none is logged.
        waiter.add_done_callback(lambda done: done.exception())
        self._waiters.append((waiter, frozenset((u.kind, u.job_id) for u in progress)))
        self._wakeup.set()
        await asyncio.shield(waiter)

    def _other_owner_queued(self, progress: Sequence[ProgressUpdate]) -> bool:
        return any(
            (queued := self._progress.get((update.kind, update.job_id))) is not None
            and queued.owner != update.owner
            for update in progress
        )

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._task is not None and not self._task.done():
            await self.write()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
            self._wakeup.clear()
            await self._commit()

    async def _commit(self) -> None:
        records, self._records = self._records, []
        progress, self._progress = list(self._progress.values()), {}
        histograms, self._histograms = list(self._histograms.values()), {}
        waiters, self._waiters = self._waiters, []
        self._in_flight = len(records)
        landed: list[Record] = []
        dropped: set[JobKey] = set()
        try:
            for start in range(0, max(len(records), 1), self._max_results):
                chunk = records[start : start + self._max_results]
                last = start + self._max_results >= len(records)
                if not (chunk or (last and (progress or histograms))):
                    continue
                if last:  # the progress, and the histograms it fences, go with the last chunk
                    landed += await self._checkpoint(chunk, progress, histograms, dropped)
                else:
                    landed += await self._checkpoint(chunk, _fences(chunk, progress), (), dropped)
        except Exception as exc:  # handed to every waiter: the jobs decide what it means
            self._in_flight = 0  # not retried here: the jobs write them again
            for waiter, _ in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        self._tell(landed)
        for waiter, jobs in waiters:
            if waiter.done():
                continue
            if refused := sorted(jobs & dropped):
                waiter.set_exception(FencedOut(refused))
            else:
                waiter.set_result(None)

    async def _checkpoint(
        self,
        chunk: Sequence[Record],
        progress: Sequence[ProgressUpdate],
        histograms: Sequence[HistogramUpdate],
        dropped: set[JobKey],
    ) -> list[Record]:
        """One checkpoint call; the records of the chunk that landed (not fenced out). The
        jobs whose update failed its fence are added to ``dropped``."""
        refused = await self._store.checkpoint(chunk, progress, histograms)
        self._in_flight -= len(chunk)
        self._last_commit = time.monotonic()
        dropped.update(refused)
        return fenced_records(chunk, refused)

    def _tell(self, landed: Sequence[Record]) -> None:
        """The ``committed`` hook, once per batch that committed whole: had a later chunk
        failed, its jobs would write every record again, and the hook would hear of those
        of the earlier chunks twice."""
        if self._committed is None or not landed:
            return
        try:
            self._committed(landed)
        except Exception:  # a broken hook must not cost the jobs their checkpoints
            log.exception("BatchWriter's committed hook failed")


def _merged(old: ProgressUpdate, new: ProgressUpdate) -> ProgressUpdate:
    """Two queued updates of one job and one owner as one: the newest values win. Updates
    of different owners never share a batch (see ``BatchWriter.write``)."""
    return ProgressUpdate(new.kind, new.job_id, {**old.values, **new.values}, new.owner)


def _fences(chunk: Sequence[Record], progress: Sequence[ProgressUpdate]) -> list[ProgressUpdate]:
    """For a chunk written before the progress: empty updates that fence its records.

    Records are fenced by their job's update in the same checkpoint call; these carry the
    owner of the queued update and no values, so a stale owner's records are dropped in every
    chunk, not only in the last one that carries the progress itself.
    """
    owners = {(u.kind, u.job_id): u.owner for u in progress if u.owner is not None}
    if not owners:
        return []
    jobs = {(r.kind, r.job_id) for r in chunk if (r.kind, r.job_id) in owners}
    return [ProgressUpdate(kind, job_id, {}, owners[kind, job_id]) for kind, job_id in sorted(jobs)]
