"""A pipeline run's receipts the queue has forgotten (both lines written for good): its
received and processed counts go on including them once their rows are deleted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("forgotten", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    """Drops the count; a run's forgotten receipts then go uncounted."""
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("forgotten")
