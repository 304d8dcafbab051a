"""Group commit: many jobs checkpoint at once, the store sees one transaction per batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from latlab.storage.base import Store
from latlab.storage.creations import GroupCreator
from latlab.storage.records import JobRecord, JobState, ProgressUpdate, Record


class BatchWriter:
    """Collects checkpoints from every job and writes them in batches.

    ``write`` returns once its data is committed, so a job never runs ahead of its checkpoint;
    the wait is shielded, so a job cancelled mid-write still leaves its data written. Records
    of every kind share a batch; the store sends each kind to its stream.
    """

    def __init__(self, store: Store, *, max_results: int = 500, delay_s: float = 0.002) -> None:
        self._store = store
        self._max_results = max_results
        self._delay_s = delay_s
        self._records: list[Record] = []
        self._progress: dict[tuple[str, int], ProgressUpdate] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._creations = GroupCreator(store)

    async def create_jobs(
        self, kind: str, specs: Sequence[Mapping[str, Any]], *, state: JobState
    ) -> list[JobRecord]:
        """``store.create_jobs``, sharing one transaction with concurrent creates of the kind."""
        return await self._creations.create_jobs(kind, specs, state)

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
    ) -> None:
        """Queue a checkpoint and wait until it is committed (or raise the store's error)."""
        if self._task is None or self._task.done():
            raise RuntimeError("BatchWriter is not running")
        self._records.extend(records)
        for update in progress:
            key = (update.kind, update.job_id)
            old = self._progress.get(key)
            self._progress[key] = update if old is None else _merged(old, update)
        waiter = asyncio.get_running_loop().create_future()
        # A waiter whose job was cancelled still gets its error; mark it seen so none is logged.
        waiter.add_done_callback(lambda done: done.exception())
        self._waiters.append(waiter)
        self._wakeup.set()
        await asyncio.shield(waiter)

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
        waiters, self._waiters = self._waiters, []
        try:
            for start in range(0, max(len(records), 1), self._max_results):
                chunk = records[start : start + self._max_results]
                last = start + self._max_results >= len(records)
                if chunk or (last and progress):
                    fences = progress if last else _fences(chunk, progress)
                    await self._store.checkpoint(chunk, fences)
        except Exception as exc:  # handed to every waiter: the jobs decide what it means
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def _merged(old: ProgressUpdate, new: ProgressUpdate) -> ProgressUpdate:
    """Two queued updates of one job as one: newest values win, unconditional if either was.

    An unconditional update is a claim: it must land, and the owned update queued with it is
    the claimant's own (one owner per process), which the claim makes pass anyway.
    """
    owner = None if old.owner is None else new.owner
    values = {**old.values, **new.values}
    return ProgressUpdate(new.kind, new.job_id, values, owner)


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
