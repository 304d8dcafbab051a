"""The results of experiments run at several locations: one series per location, each a job
of kind ``probe_site`` keyed like an experiment's own results, with its location.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from latlab.storage.sql.tables import JobId, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_results",
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
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, server_default="probe_site"),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_site_results"),
        sa.ForeignKeyConstraint(
            ["kind", "job_id"],
            ["jobs.kind", "jobs.id"],
            name="fk_site_results_job",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    """Drops the series' results; their ``probe_site`` jobs stay, as other jobs do."""
    op.drop_table("site_results")
