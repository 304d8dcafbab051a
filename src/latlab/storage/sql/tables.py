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
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

# SQLite only autoincrements an INTEGER PRIMARY KEY, not a BIGINT one (revision 0001 relies on it).
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

# Ids are per kind: ``(kind, id)`` is the key, and ``job_counters`` hands out the next id of a
# kind inside the creating transaction (a rollback gives the ids back, concurrent creators wait
# on the counter row). Ids are never reused after a delete: the counter only grows.
jobs = Table(
    "jobs",
    metadata,
    Column("kind", String(16), nullable=False),
    Column("id", JobId, nullable=False, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("progress", JSON, nullable=False),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("kind", "id", name="pk_jobs"),
    Index("ix_jobs_kind_state", "kind", "state"),
)

job_counters = Table(
    "job_counters",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("last_id", JobId, nullable=False),
)


def probe_columns() -> list[Column[Any]]:
    """The columns of a probe's result (migrations build the same from their own copy)."""
    return [
        Column("job_id", JobId, nullable=False),
        Column("seq", Integer, nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("latency_ms", Float, nullable=False),
        Column("timestamp", UtcDateTime, nullable=False),
        Column("scheduled_at", UtcDateTime, nullable=False),
        Column("connect_ms", Float),
        Column("ttfb_ms", Float),
        Column("dns_ms", Float),
        Column("error", Text),
    ]


def _owned_by(table: str, kind: str) -> list[Any]:
    """``kind`` (always the same) lets the foreign key name the job by its full key and
    cascade a delete to that job's results, none other."""
    return [
        Column("kind", String(16), nullable=False, server_default=kind),
        PrimaryKeyConstraint("job_id", "seq", name=f"pk_{table}"),
        ForeignKeyConstraint(
            ["kind", "job_id"],
            ["jobs.kind", "jobs.id"],
            name=f"fk_{table}_job",
            ondelete="CASCADE",
        ),
    ]


# Results of experiments (jobs of kind "probe").
probe_results = Table(
    "probe_results", metadata, *probe_columns(), *_owned_by("probe_results", "probe")
)

# Results of an experiment's series at one location (jobs of kind "probe_site").
site_results = Table(
    "site_results",
    metadata,
    *probe_columns(),
    Column("location", String(64), nullable=False),
    *_owned_by("site_results", "probe_site"),
)

values = Table(
    "values",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One row per job and bucket (TOTAL_BUCKET, -1, for the whole run; else minutes since the epoch),
# replaced by each checkpoint: the primary key is the read's index range. No foreign key:
# ``delete_job`` deletes them itself, after the job row (see ``SqlStore.delete_job``).
histograms = Table(
    "histograms",
    metadata,
    Column("kind", Text, nullable=False),
    Column("job_id", BigInteger, nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    PrimaryKeyConstraint("kind", "job_id", "bucket", name="pk_histograms"),
)

# The pipeline's durable queue (``latlab.pipeline.queue.sql``): one row per acknowledged
# request, ``seq`` its place in receipt order (1, 2, 3, … with no gap). ``finished_order``
# numbers outcomes as they are recorded: the writer's feed of outcomes reads it.
pipeline_receipts = Table(
    "pipeline_receipts",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("request_id", String(36), nullable=False),
    Column("delay_s", Float, nullable=False),
    Column("receive_time_us", BigInteger, nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("tries", Integer, nullable=False, default=0),
    Column("finished_order", BigInteger, nullable=True, unique=True),
    Column("error", Text, nullable=True),
    Index("ix_pipeline_receipts_run_id", "run_id"),  # a run's received / processed counts
)

# One row per pipeline client call (``latlab.storage.sql.pipeline_runs``): the client writes
# the start and the end of its call, the writer adds what it wrote (``written``, and the
# end-to-end latencies as a histogram payload). ``requests`` and ``connections`` are null in
# a row the writer made first (the client's start was not recorded).
pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("requests", Integer, nullable=True),
    Column("connections", Integer, nullable=True),
    Column("sent", Integer, nullable=False, default=0),
    Column("acked", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("ack_histogram", Text, nullable=True),
    Column("written", BigInteger, nullable=False, default=0),
    Column("e2e_histogram", Text, nullable=True),
    # Receipts of the run the queue dropped once written for good (counted as received and
    # processed: their rows are gone).
    Column("forgotten", BigInteger, nullable=False, default=0, server_default="0"),
    Index("ix_pipeline_runs_started_at", "started_at"),  # pages, newest first
)
