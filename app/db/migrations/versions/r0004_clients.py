"""Clients: tasks remember the task they remix and when their owner deleted them (the row stays,
hidden), for the OpenAI-compatible ``/v1/videos``; CSV batches and their rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.add_column(sa.Column("remixed_from", sa.String(40)))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.create_table(
        "vgw_batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("filename", sa.String(200)),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    for column in ("owner", "status", "created_at"):
        op.create_index(f"ix_vgw_batches_{column}", "vgw_batches", [column])
    op.create_table(
        "vgw_batch_rows",
        sa.Column("batch_id", sa.String(40), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("cells", sa.JSON, nullable=False),
        sa.Column("body", sa.JSON),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("task_id", sa.String(40)),
        sa.Column("error", sa.JSON),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("vgw_batch_rows")
    for column in ("owner", "status", "created_at"):
        op.drop_index(f"ix_vgw_batches_{column}", "vgw_batches")
    op.drop_table("vgw_batches")
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("remixed_from")
