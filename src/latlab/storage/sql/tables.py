"""Table definitions used by queries. The migrations in ``migrations/`` are the schema's history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

# SQLite only autoincrements an INTEGER PRIMARY KEY, not a BIGINT one.
JobId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", JobId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("progress", JSON, nullable=False),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_jobs_kind_state", "kind", "state"),
    # Ids are never reused after a delete (SQLite would otherwise hand out max(id)+1 again).
    sqlite_autoincrement=True,
)

probe_results = Table(
    "probe_results",
    metadata,
    Column("job_id", JobId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("status_code", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("scheduled_at", UtcDateTime, nullable=False),
    Column("connect_ms", Float),
    Column("ttfb_ms", Float),
    Column("dns_ms", Float),
    Column("error", Text),
)

values = Table(
    "values",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
