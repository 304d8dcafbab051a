"""Checkpoint progress on SQL: fenced and merged under a row lock, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, false, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from latlab.storage.records import ProgressUpdate, utc_now
from latlab.storage.sql.tables import jobs

# Chunked: SQLite takes at most 32,766 parameters in one statement.
_CHUNK = 10_000

_update_progress = (
    update(jobs)
    .where(jobs.c.kind == bindparam("b_kind"), jobs.c.id == bindparam("b_id"))
    .values(progress=bindparam("progress"), updated_at=bindparam("now"))
)
# SQLite has no row locks and sqlite3 opens the transaction only at the first write, so a
# SELECT before it reads outside the transaction. This write changes nothing but takes the
# database's write lock first (waiting out the busy timeout), so read-decide-write is atomic.
_take_sqlite_write_lock = update(jobs).where(false()).values(state=jobs.c.state)

JobKey = tuple[str, int]


@dataclass
class Saved:
    """What ``save_progress`` found: jobs whose update failed its fence, and jobs that exist."""

    dropped: set[JobKey] = field(default_factory=set)
    found: set[JobKey] = field(default_factory=set)


async def save_progress(
    conn: AsyncConnection,
    progress: Sequence[ProgressUpdate],
    also_lock: Collection[JobKey] = (),
) -> Saved:
    """Merge every update that passes its fence; lock the rows of ``also_lock`` too.

    The current progress of the jobs is read ``FOR UPDATE`` (PostgreSQL locks the rows until
    commit, all in ``(kind, id)`` order so two writers cannot deadlock), so neither the fence
    nor the merge can be undone by a concurrent checkpoint of the same job, and a job found
    here cannot be deleted before this transaction ends (what histograms need).
    """
    by_job: dict[JobKey, list[ProgressUpdate]] = {}
    for update_ in progress:  # per-job order kept
        by_job.setdefault((update_.kind, update_.job_id), []).append(update_)
    keys = sorted({*by_job, *also_lock})
    saved = Saved()
    if not keys:
        return saved
    if conn.dialect.name == "sqlite":
        await conn.execute(_take_sqlite_write_lock)
    for kind, group in groupby(keys, key=itemgetter(0)):
        ids = [job_id for _, job_id in group]
        for start in range(0, len(ids), _CHUNK):
            await _save_chunk(conn, kind, ids[start : start + _CHUNK], by_job, saved)
    return saved


async def _save_chunk(
    conn: AsyncConnection,
    kind: str,
    ids: Sequence[int],
    by_job: Mapping[JobKey, Sequence[ProgressUpdate]],
    saved: Saved,
) -> None:
    query = (
        select(jobs.c.id, jobs.c.progress)
        .where(jobs.c.kind == kind, jobs.c.id.in_(ids))
        .order_by(jobs.c.id)
        .with_for_update()
    )
    now = utc_now()
    rows: list[dict[str, Any]] = []
    for job_id, old in await conn.execute(query):
        saved.found.add((kind, job_id))
        merged, passed = _apply(old, by_job.get((kind, job_id), ()))
        if not passed:
            saved.dropped.add((kind, job_id))
        if merged is not None:
            rows.append({"b_kind": kind, "b_id": job_id, "progress": merged, "now": now})
    if rows:
        await conn.execute(_update_progress, rows)


def _apply(
    old: dict[str, Any], updates: Sequence[ProgressUpdate]
) -> tuple[dict[str, Any] | None, bool]:
    """One job's updates in order: its new progress (None if unchanged), did all pass?"""
    current, changed, passed = old, False, True
    for update_ in updates:
        if not update_.applies_to(current):
            passed = False
        elif update_.values:
            current, changed = {**current, **update_.values}, True
    return (current if changed else None), passed
