"""Jobs made of jobs: a load run's shards, an experiment's series at each location.

The parent runs in the control plane (it only follows), its children on workers, each a job
of its own (dispatched, leased, fenced, resumed as any job). At its first start the parent
creates them, records their ids in its checkpoint, then starts them; pause, resume, stop and
delete of the parent act on them. What is common to both kinds of parent is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from latlab.jobs.driver import JobFailed
from latlab.jobs.runner import RunContext, fence_owner
from latlab.jobs.state import Action, InvalidTransition
from latlab.jobs.supervise import until_stored
from latlab.storage import JobNotFound, JobRecord, JobState
from latlab.storage.records import ProgressUpdate

if TYPE_CHECKING:  # the manager runs the kinds: theirs to be handed it, not to import it
    from latlab.jobs.manager import JobManager

# A child's progress key its process sets once what it measured before a halt is stored.
DRAINED_KEY = "drained_at"
DRAIN_EVERY_S = 0.1  # how often a stop reads whether its children have drained
DRAIN_MARK_S = 5.0  # how long a halted child waits for its last checkpoint and mark


async def mark_drained(ctx: RunContext, kind: str, job_id: int) -> None:
    """In a halted child: say that what it measured is stored (its parent's stop waits for
    it). Queued after its last checkpoint, fenced by its owner, bounded."""
    update = ProgressUpdate(kind, job_id, {DRAINED_KEY: time.time()}, fence_owner(ctx))
    marking = asyncio.ensure_future(ctx.writer.write([], [update]))
    with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
        await asyncio.wait_for(asyncio.shield(marking), DRAIN_MARK_S)
    if not marking.done():
        marking.cancel()


@dataclass(frozen=True, slots=True)
class Children:
    """The children of kind ``kind`` of a parent: their specs name it in ``parent`` and
    number them in ``index``; the parent's checkpoint lists their ids under ``key``."""

    kind: str
    key: str
    parent: str
    noun: str
    drain_wait_s: float = 6.0  # a halted child's process stores what it measured within 5 s

    async def parent_of(self, child: JobRecord, ctx: RunContext, kind: str, noun: str) -> JobRecord:
        """The child's parent (a job of ``kind``), through store outages; gone, the child
        fails: it has nothing to run."""
        parent_id = int(child.spec[self.parent])
        read = functools.partial(ctx.store.get_job, kind, parent_id)
        try:
            return await until_stored(f"{self.noun} {child.id}", read)
        except JobNotFound:
            raise JobFailed(f"its {noun} {parent_id} is gone") from None

    def ids(self, job: JobRecord) -> list[int]:
        ids = job.progress.get(self.key)
        return [int(i) for i in ids] if isinstance(ids, list) else []

    async def read(self, ctx: RunContext, ids: Sequence[int]) -> dict[int, JobRecord]:
        """The children by id, through store outages; one deleted meanwhile is left out."""
        children = {}
        for child_id in ids:
            read = functools.partial(ctx.store.get_job, self.kind, child_id)
            with contextlib.suppress(JobNotFound):
                children[child_id] = await until_stored(f"{self.noun} {child_id}", read)
        return children

    async def made(
        self, job: JobRecord, ctx: RunContext, jobs: JobManager, specs: Sequence[Mapping[str, Any]]
    ) -> list[int]:
        """The children's ids: recorded already, or left by an earlier start that died before
        recording them (taken, not made again: nothing else would ever list them), or made
        now. Made ones are recorded before any starts, so a crash in between leaves
        ``created`` jobs, never work nobody follows."""
        if recorded := self.ids(job):
            return recorded
        ids = await self._left(job, ctx, len(specs))
        if not ids:
            ids = [child.id for child in await jobs.create_many(self.kind, specs)]
        update = ProgressUpdate(job.kind, job.id, {self.key: ids}, fence_owner(ctx))
        await until_stored(
            f"{job.kind} {job.id}", functools.partial(ctx.writer.write, [], [update])
        )
        read = functools.partial(ctx.store.get_job, job.kind, job.id)
        if self.ids(await until_stored(f"{job.kind} {job.id}", read)) != ids:
            # Fenced out: another process owns the parent now. What it records is the
            # truth; what this one made is left to it (its adoption may take them), and a
            # child it does not list never runs (see belongs).
            raise JobFailed(f"{job.kind} {job.id} was taken over by another process")
        return ids

    async def _left(self, job: JobRecord, ctx: RunContext, count: int) -> list[int]:
        read = functools.partial(ctx.store.list_jobs, self.kind, states={JobState.CREATED})
        page = await until_stored(f"{job.kind} {job.id}", read)
        left = {
            int(child.spec.get("index", -1)): child.id
            for child in page.items
            if child.spec.get(self.parent) == job.id
        }
        if sorted(left) != list(range(count)):
            return []
        return [left[index] for index in range(count)]

    async def halted(self, ctx: RunContext, ids: Sequence[int]) -> list[int]:
        """The children to start: new ones (all, or those the parent's last process did not
        get to) and paused ones. A running child is left to the process that runs it."""
        children = await self.read(ctx, ids)
        halted = (JobState.CREATED, JobState.PAUSED)
        return [child_id for child_id, child in children.items() if child.state in halted]

    async def act(self, jobs: JobManager, ids: Sequence[int], action: Action) -> None:
        """``action`` on each child, unless it is past it already (ended, or gone). Through
        a store outage: the parent's own state has moved already, and its children follow."""
        await asyncio.gather(*(self._act(jobs, child_id, action) for child_id in ids))

    async def _act(self, jobs: JobManager, child_id: int, action: Action) -> None:
        act = functools.partial(jobs.act, self.kind, child_id, action)
        with contextlib.suppress(InvalidTransition, JobNotFound):
            await until_stored(f"{self.noun} {child_id} {action}", act)

    async def drain_marks(self, ctx: RunContext, ids: Sequence[int]) -> dict[int, object]:
        """The running children a process has claimed, with the drain mark each has before
        it is halted (one nobody claimed yet, waiting for a worker, has nothing to drain)."""
        children = await self.read(ctx, ids)
        return {
            child_id: child.progress.get(DRAINED_KEY)
            for child_id, child in children.items()
            if child.state is JobState.RUNNING and child.progress.get("fleet") is not None
        }

    async def until_drained(self, ctx: RunContext, marks: dict[int, object]) -> None:
        """Until every child in ``marks`` has a new drain mark (what it measured stored where
        it ran, after its halt), or ``drain_wait_s`` (a worker that died never drains)."""
        deadline = asyncio.get_running_loop().time() + self.drain_wait_s
        waiting = dict(marks)
        while waiting and asyncio.get_running_loop().time() < deadline:
            children = await self.read(ctx, list(waiting))
            for child_id, mark in list(waiting.items()):
                child = children.get(child_id)
                if child is None or drained_since(child, mark):
                    del waiting[child_id]
            if waiting:
                await asyncio.sleep(DRAIN_EVERY_S)

    async def stop(self, jobs: JobManager, ctx: RunContext, ids: Sequence[int]) -> None:
        """Stop the children and wait (bounded) until those that ran have stored what they
        measured before their halt."""
        running = await self.drain_marks(ctx, ids)
        await self.act(jobs, ids, Action.STOP)
        await self.until_drained(ctx, running)

    async def delete(self, jobs: JobManager, ids: Sequence[int]) -> None:
        """Delete the children (halted first: see :meth:`stop`)."""
        await asyncio.gather(*(self._delete(jobs, child_id) for child_id in ids))

    async def stop_and_delete(self, jobs: JobManager, ctx: RunContext, parent: JobRecord) -> None:
        """Before the parent goes (its follower halted): the children it lists now, read
        again (a start halted just now may have recorded them), stopped and deleted."""
        read = functools.partial(ctx.store.get_job, parent.kind, parent.id)
        with contextlib.suppress(JobNotFound):
            parent = await until_stored(f"{parent.kind} {parent.id} delete", read)
        ids = self.ids(parent)
        await self.stop(jobs, ctx, ids)
        await self.delete(jobs, ids)

    async def belongs(self, child: JobRecord, parent: JobRecord) -> None:
        """Fail a child its parent does not list: one made by a process that lost the
        parent, which must not run."""
        if child.id not in self.ids(parent):
            raise JobFailed(f"{self.noun} {child.id} is not one of {parent.kind} {parent.id}'s")

    async def _delete(self, jobs: JobManager, child_id: int) -> None:
        delete = functools.partial(jobs.delete, self.kind, child_id)
        with contextlib.suppress(JobNotFound):
            await until_stored(f"{self.noun} {child_id} delete", delete)


def drained_since(child: JobRecord, mark: object) -> bool:
    """A new drain mark, or an end of its own (it completed or failed meanwhile). A mark
    cleared (None: a new attempt began, see the load runner) is no drain."""
    ended = child.state in (JobState.COMPLETED, JobState.FAILED)
    now = child.progress.get(DRAINED_KEY)
    return ended or (now is not None and now != mark)


class Parents:
    """What runs parents: bound to the job manager once it exists (the manager is made
    with the kinds, so it cannot be handed in at construction)."""

    noun = "jobs made of jobs"

    def __init__(self) -> None:
        self._jobs: JobManager | None = None

    def bind(self, jobs: JobManager) -> None:
        self._jobs = jobs

    def _bound(self) -> JobManager:
        if self._jobs is None:
            raise JobFailed(f"{self.noun} are not available in this process")
        return self._jobs
