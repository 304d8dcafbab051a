"""A process frozen in the middle of a PostgreSQL transaction (SIGSTOP, a paused VM) must not
hold its row locks for as long as it is frozen: the job it held could never be handed on."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from latlab.storage import JobState, Store
from latlab.storage.records import ProgressUpdate
from latlab.storage.sql.engine import IDLE_IN_TRANSACTION_S, create_engine

pytestmark = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)


async def test_a_transaction_left_idle_loses_its_locks_and_a_claim_goes_through(
    store: Store, store_url: str
) -> None:
    """Found in a CI rehearsal: a worker frozen while it wrote a checkpoint kept the job's
    row locked, so the other worker's claim waited until it woke, past the handoff."""
    (job,) = await store.create_jobs("probe", [{}], state=JobState.RUNNING)
    frozen = create_engine(store_url)
    try:
        conn = await frozen.connect()
        await conn.execute(
            text("SELECT id FROM jobs WHERE kind = 'probe' AND id = :id FOR UPDATE"),
            {"id": job.id},
        )
        began = time.monotonic()  # and now nothing more from this session: frozen
        claim = ProgressUpdate("probe", job.id, {"fleet": "the-other-worker"})
        await asyncio.wait_for(store.checkpoint([], [claim]), IDLE_IN_TRANSACTION_S + 5)
        waited_s = time.monotonic() - began
        with pytest.raises(DBAPIError, match="connection"):  # the server ended that session
            await conn.execute(text("SELECT 1"))
        await conn.invalidate()
    finally:
        await frozen.dispose()
    held = await store.get_job("probe", job.id)
    assert held.progress["fleet"] == "the-other-worker"
    assert waited_s >= IDLE_IN_TRANSACTION_S - 0.5  # it was held, then let go


async def test_the_setting_holds_for_every_session_through_rollbacks(store_url: str) -> None:
    """Set on each new session (not as a startup parameter, which PgBouncer refuses), and
    outside a transaction, so the pool's rollback on return does not undo it."""
    engine = create_engine(store_url)
    shown = []
    try:
        for _ in range(3):
            async with engine.connect() as conn:
                setting = await conn.execute(text("SHOW idle_in_transaction_session_timeout"))
                shown.append(setting.scalar())
                await conn.rollback()
    finally:
        await engine.dispose()
    assert shown == [f"{IDLE_IN_TRANSACTION_S:g}s"] * 3
