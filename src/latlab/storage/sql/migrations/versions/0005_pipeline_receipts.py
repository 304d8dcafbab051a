"""The pipeline's durable queue: one row per acknowledged request, in receipt order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_receipts",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("delay_s", sa.Float, nullable=False),
        sa.Column("receive_time_us", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("finished_order", sa.BigInteger, nullable=True, unique=True),
        sa.Column("error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    """Drops the pipeline's queue; nothing else refers to it."""
    op.drop_table("pipeline_receipts")
