"""The pipeline's durable queue (one row per acknowledged request, in receipt order) and its
runs (one row per client call).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from latlab.storage.sql.tables import UtcDateTime

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
    op.create_index("ix_pipeline_receipts_run_id", "pipeline_receipts", ["run_id"])
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.Column("requests", sa.Integer, nullable=True),
        sa.Column("connections", sa.Integer, nullable=True),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("acked", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("ack_histogram", sa.Text, nullable=True),
        sa.Column("written", sa.BigInteger, nullable=False),
        sa.Column("e2e_histogram", sa.Text, nullable=True),
    )
    op.create_index("ix_pipeline_runs_started_at", "pipeline_runs", ["started_at"])


def downgrade() -> None:
    """Drops the pipeline's runs and queue; nothing else refers to them."""
    op.drop_index("ix_pipeline_runs_started_at", "pipeline_runs")
    op.drop_table("pipeline_runs")
    op.drop_index("ix_pipeline_receipts_run_id", "pipeline_receipts")
    op.drop_table("pipeline_receipts")
