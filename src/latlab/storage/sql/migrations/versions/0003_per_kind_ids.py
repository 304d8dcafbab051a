"""Ids per kind: ``jobs`` keyed by ``(kind, id)``, a ``job_counters`` row per kind.

Both tables are rebuilt (SQLite cannot change a primary key in place) by copying into new tables
and renaming them; existing ids, specs, progress and results are kept as they are. Each kind that
has jobs gets a counter at the old shared sequence's high-water mark, so an id handed out before
(even one of a job deleted since) is never handed out again for that kind.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from latlab.storage.sql.tables import JobId, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JOB_COLUMNS = ["kind", "id", "state", "spec", "progress", "error", "created_at", "updated_at"]
_RESULT_COLUMNS = [
    *("job_id", "seq", "status_code", "latency_ms", "timestamp", "scheduled_at"),
    *("connect_ms", "ttfb_ms", "dns_ms", "error"),
]


def upgrade() -> None:
    _create_counters()
    _create_jobs("jobs_new")
    _copy("jobs", "jobs_new", _JOB_COLUMNS)
    _create_results("probe_results_new", "jobs_new")
    _copy("probe_results", "probe_results_new", _RESULT_COLUMNS, kind="probe")
    # Results first: with foreign keys on, dropping a referenced table would delete (cascade)
    # the rows that reference it. Renaming rewrites the references in probe_results_new.
    op.drop_table("probe_results")
    op.drop_table("jobs")
    op.rename_table("jobs_new", "jobs")
    op.rename_table("probe_results_new", "probe_results")
    op.create_index("ix_jobs_kind_state", "jobs", ["kind", "state"])


def _copy(source: str, target: str, names: list[str], **constants: str) -> None:
    """INSERT INTO target SELECT FROM source, in the database: no row passes through Python."""
    selected = [*(sa.column(name) for name in names), *(sa.literal(v) for v in constants.values())]
    into = sa.table(target, *(sa.column(name) for name in [*names, *constants]))
    query = sa.select(*selected).select_from(sa.table(source))
    op.execute(sa.insert(into).from_select([*names, *constants], query))


def _high_water_mark() -> int:
    """The largest id the shared sequence ever handed out (deleted jobs included)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        query = "SELECT pg_sequence_last_value(pg_get_serial_sequence('jobs', 'id')::regclass)"
    else:
        query = "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"
    sequence = bind.execute(sa.text(query)).scalar()
    largest = bind.execute(sa.text("SELECT MAX(id) FROM jobs")).scalar()
    return max(int(sequence or 0), int(largest or 0))


def _create_counters() -> None:
    op.create_table(
        "job_counters",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("last_id", JobId, nullable=False),
    )
    seed = sa.text("INSERT INTO job_counters (kind, last_id) SELECT DISTINCT kind, :last FROM jobs")
    last = sa.bindparam("last", _high_water_mark(), type_=sa.BigInteger)
    op.get_bind().execute(seed.bindparams(last))


def _create_jobs(name: str) -> None:
    op.create_table(
        name,
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("id", JobId, nullable=False, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("kind", "id", name="pk_jobs"),
    )


def _create_results(name: str, jobs_table: str) -> None:
    op.create_table(
        name,
        sa.Column("job_id", JobId, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("timestamp", UtcDateTime, nullable=False),
        sa.Column("scheduled_at", UtcDateTime, nullable=False),
        sa.Column("connect_ms", sa.Float),
        sa.Column("ttfb_ms", sa.Float),
        sa.Column("dns_ms", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("kind", sa.String(16), nullable=False, server_default="probe"),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_probe_results"),
        sa.ForeignKeyConstraint(
            ["kind", "job_id"],
            [f"{jobs_table}.kind", f"{jobs_table}.id"],
            name="fk_probe_results_job",
            ondelete="CASCADE",
        ),
    )


class IdsCollide(RuntimeError):
    """Jobs of different kinds share an id: the shared-id schema of 0002 cannot hold them."""


def downgrade() -> None:
    """Back to one id sequence, possible while no two jobs share an id across kinds."""
    bind = op.get_bind()
    shared = "SELECT id FROM jobs GROUP BY id HAVING COUNT(*) > 1 ORDER BY id LIMIT 5"
    colliding = [row[0] for row in bind.execute(sa.text(shared))]
    if colliding:
        raise IdsCollide(
            f"cannot downgrade below 0003: jobs of different kinds share ids {colliding}; "
            "delete or renumber them first"
        )
    last = bind.execute(sa.text("SELECT MAX(last_id) FROM job_counters")).scalar()
    _create_shared_jobs("jobs_old")
    _copy("jobs", "jobs_old", _JOB_COLUMNS)
    _create_shared_results("probe_results_old")
    _copy("probe_results", "probe_results_old", _RESULT_COLUMNS)
    op.drop_table("probe_results")
    op.drop_table("jobs")
    op.drop_table("job_counters")
    op.rename_table("jobs_old", "jobs")
    op.rename_table("probe_results_old", "probe_results")
    op.create_index("ix_jobs_kind_state", "jobs", ["kind", "state"])
    _continue_shared_sequence(int(last or 0))


def _create_shared_jobs(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", JobId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sqlite_autoincrement=True,
    )


def _create_shared_results(name: str) -> None:
    op.create_table(
        name,
        sa.Column("job_id", JobId, sa.ForeignKey("jobs_old.id", ondelete="CASCADE")),
        sa.Column("seq", sa.Integer),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("timestamp", UtcDateTime, nullable=False),
        sa.Column("scheduled_at", UtcDateTime, nullable=False),
        sa.Column("connect_ms", sa.Float),
        sa.Column("ttfb_ms", sa.Float),
        sa.Column("dns_ms", sa.Float),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("job_id", "seq"),
    )


def _continue_shared_sequence(last_id: int) -> None:
    """The shared sequence resumes after every id any kind handed out."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        if last_id:
            query = "SELECT setval(pg_get_serial_sequence('jobs', 'id'), :last)"
            bind.execute(sa.text(query), {"last": last_id})
        return
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'jobs'"))
    insert = "INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', :last)"
    bind.execute(sa.text(insert), {"last": last_id})
