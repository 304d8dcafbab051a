"""Checkpoint progress on SQL: fenced and merged under a row lock, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
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


async def save_progress(
    conn: AsyncConnection, progress: Sequence[ProgressUpdate]
) -> set[tuple[str, int]]:
    """Merge every update that passes its fence; return the jobs (``(kind, id)``) with one
    that did not.

    The current progress of the jobs is read ``FOR UPDATE`` (PostgreSQL locks the rows until
    commit, in id order so two writers cannot deadlock), so neither the fence nor the merge
    can be undone by a concurrent checkpoint of the same job.
    """
    if not progress:
        return set()
    if conn.dialect.name == "sqlite":
        await conn.execute(_take_sqlite_write_lock)
    dropped: set[tuple[str, int]] = set()
    ordered = sorted(progress, key=lambda u: (u.kind, u.job_id))  # stable: per-job order kept
    for kind, updates in groupby(ordered, key=lambda u: u.kind):
        batch = list(updates)
        for start in range(0, len(batch), _CHUNK):
            failed = await _save_chunk(conn, kind, batch[start : start + _CHUNK])
            dropped |= {(kind, job_id) for job_id in failed}
    return dropped


async def _save_chunk(
    conn: AsyncConnection, kind: str, chunk: Sequence[ProgressUpdate]
) -> set[int]:
    by_job: dict[int, list[ProgressUpdate]] = {}
    for update_ in chunk:
        by_job.setdefault(update_.job_id, []).append(update_)
    query = (
        select(jobs.c.id, jobs.c.progress)
        .where(jobs.c.kind == kind, jobs.c.id.in_(by_job))
        .order_by(jobs.c.id)
        .with_for_update()
    )
    now = utc_now()
    rows: list[dict[str, Any]] = []
    failed: set[int] = set()
    for job_id, old in await conn.execute(query):
        merged, passed = _apply(old, by_job[job_id])
        if not passed:
            failed.add(job_id)
        if merged is not None:
            rows.append({"b_kind": kind, "b_id": job_id, "progress": merged, "now": now})
    if rows:
        await conn.execute(_update_progress, rows)
    return failed


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
