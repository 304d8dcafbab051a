"""Per-job histograms, replaced with each checkpoint, keyed by ``(kind, job_id, bucket)``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "histograms",
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("job_id", sa.BigInteger, nullable=False),
        sa.Column("bucket", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("kind", "job_id", "bucket", name="pk_histograms"),
    )


def downgrade() -> None:
    """Drops the stored histograms; no other table refers to them."""
    op.drop_table("histograms")
