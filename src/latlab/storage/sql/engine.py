"""Engine creation and schema migration for the SQL adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

# Any constant works; it only keeps two processes from migrating one PostgreSQL at once.
_MIGRATION_LOCK_KEY = 0x1A71AB
SQLITE_BUSY_TIMEOUT_S = 10.0
# PostgreSQL ends a session left idle inside a transaction this long, and its locks with it:
# a process frozen mid-checkpoint (SIGSTOP, a paused VM) must not hold a job's row past its
# lease (3 s), or no other process could claim the job until it woke. LatLab's transactions
# wait on nothing but the database, so a healthy one is never idle that long.
IDLE_IN_TRANSACTION_S = 3.0


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer. The busy timeout (wait for a lock instead of
    # failing at once) is sqlite3's ``timeout``: see create_engine.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # Pre-ping replaces connections that died in an outage, so the same engine (and store)
        # works again once the server is back.
        engine = create_async_engine(url, pool_pre_ping=True)
        if parsed.get_backend_name() == "postgresql":
            event.listen(engine.sync_engine, "connect", _postgres_session)
        return engine
    # Wait up to 10 s for another writer's lock unless the URL says otherwise (?timeout=0.5).
    connect_args = {} if "timeout" in parsed.query else {"timeout": SQLITE_BUSY_TIMEOUT_S}
    database = parsed.database or ""
    if database in ("", ":memory:"):
        # One shared connection, or every connection would see its own empty database.
        engine = create_async_engine(url, poolclass=StaticPool, connect_args=connect_args)
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args=connect_args)
    event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return engine


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    """Set on each new session, not as a startup parameter, which connection poolers such
    as PgBouncer refuse; outside a transaction, so that no rollback undoes it."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    cursor = dbapi_connection.cursor()
    timeout_ms = int(IDLE_IN_TRANSACTION_S * 1000)
    cursor.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")
    cursor.close()
    dbapi_connection.autocommit = autocommit


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for LatLab's migrations, on an open connection."""
    config = Config()
    config.set_main_option("script_location", "latlab.storage.sql:migrations")
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    """Migrate to the newest schema, one process at a time: processes started together on a
    fresh database (``serve`` and its workers) would each find it empty and each create it."""
    config = alembic_config(connection)
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        if _at_head(connection, config):
            return  # the usual start: no write lock to wait for behind a busy writer
        # No advisory lock here: the write lock, taken before alembic reads the version again,
        # and the whole migration in one transaction (SQLite's DDL is transactional).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    command.upgrade(config, "head")


def _at_head(connection: Connection, config: Config) -> bool:
    """Whether the database is at the newest revision (read without a lock)."""
    current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(ScriptDirectory.from_config(config).get_heads())


async def migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
