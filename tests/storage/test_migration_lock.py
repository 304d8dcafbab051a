"""Processes started together on one fresh SQLite file (``latlab serve`` and its workers)
migrate it one at a time: found by starting three at once, where one in four failed with
``table jobs already exists`` (each had read an empty database, then created the tables)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command

from latlab.storage.sql.engine import alembic_config, create_engine, migrate

WAIT_S = 10.0


def migrating_until(path: Path, locked: threading.Event, go: threading.Event) -> None:
    """Another process's migration: the write lock, the schema written, the commit held until
    ``go``."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # as LatLab opens it
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            command.upgrade(alembic_config(conn), "head")
            locked.set()
            assert go.wait(WAIT_S), "the second migration never reached the database"
    finally:
        engine.dispose()


async def test_a_migration_waits_for_one_in_progress_and_finds_the_schema_made(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latlab.db"
    locked, go = threading.Event(), threading.Event()
    first = asyncio.create_task(asyncio.to_thread(migrating_until, path, locked, go))
    assert await asyncio.to_thread(locked.wait, WAIT_S)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")

    def reaching(*args: Any) -> None:
        statement: str = args[2]
        if statement.lstrip().startswith(("BEGIN IMMEDIATE", "CREATE TABLE")):
            go.set()  # the first commits now, while this one waits for the lock or acts

    sa.event.listen(engine.sync_engine, "before_cursor_execute", reaching)
    try:
        await migrate(engine)  # before: "table alembic_version already exists"
        async with engine.connect() as conn:
            versions = (await conn.exec_driver_sql("SELECT * FROM alembic_version")).all()
    finally:
        await engine.dispose()
    await first
    assert len(versions) == 1


async def test_a_database_at_the_newest_revision_opens_beside_a_busy_writer(
    tmp_path: Path,
) -> None:
    """Found in review: every start took the write lock to migrate, so a process opening the
    store while another wrote waited for it, and with ``?timeout=0.2`` failed ("database is
    locked"). Only a migration that has something to do takes it."""
    path = tmp_path / "latlab.db"
    await migrated(f"sqlite+aiosqlite:///{path}")
    writer = sqlite3.connect(path)
    writer.execute("BEGIN IMMEDIATE")  # another process, in the middle of a write
    try:
        await migrated(f"sqlite+aiosqlite:///{path}?timeout=0.2")
    finally:
        writer.rollback()
        writer.close()


async def migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
