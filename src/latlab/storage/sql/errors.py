"""Which SQLAlchemy/driver errors mean "the database cannot be reached right now"."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from latlab.storage.outage import translating

# SQLite reports a busy writer or a failing disk as OperationalError, like a typo in a query:
# only these messages are the database being unavailable rather than a bug.
_SQLITE_OUTAGES = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "unable to open database file",
)


# SQLSTATE classes of a server that is away: 08 connection exception, 57 operator
# intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 "the database system is
# shutting down" / starting up). asyncpg reports these as plain DBAPIError.
_POSTGRES_OUTAGE_CLASSES = ("08", "57")


def _sqlstate(exc: DBAPIError) -> str:
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    return str(state or "")


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc.orig, sqlite3.Error):
            message = str(exc.orig).lower()
            return any(outage in message for outage in _SQLITE_OUTAGES)
        if _sqlstate(exc)[:2] in _POSTGRES_OUTAGE_CLASSES:
            return True
        # PostgreSQL: asyncpg's connection errors arrive as these (lost, refused, timed out).
        return isinstance(exc, OperationalError | InterfaceError)
    # Raised outside a statement: connecting (refused, reset) and timeouts (asyncpg, the pool).
    return isinstance(exc, OSError | PoolTimeout)


translated = translating(is_outage)


def unstorable(exc: StatementError) -> TypeError | None:
    """The TypeError to raise when a value (a spec) could not be encoded, else None."""
    if not isinstance(exc, DBAPIError) and isinstance(exc.orig, TypeError | ValueError):
        return TypeError(f"cannot store this value: {exc.orig}")
    return None
