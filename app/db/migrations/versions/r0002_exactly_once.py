"""Exactly once: when a submit started (for reconciling a lost answer), the webhook outbox, and
a small key/value table for values every replica must share (the generated webhook secret).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.add_column(sa.Column("submit_started_at", sa.DateTime(timezone=True)))
    op.create_index("ix_vgw_tasks_provider_task_id", "vgw_tasks", ["provider_task_id"])
    op.create_table(
        "vgw_webhook_outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.String(300)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_vgw_webhook_outbox_task_id", "vgw_webhook_outbox", ["task_id"])
    op.create_index(
        "ix_vgw_webhook_outbox_due", "vgw_webhook_outbox", ["status", "next_attempt_at"]
    )
    op.create_table(
        "vgw_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vgw_meta")
    op.drop_table("vgw_webhook_outbox")
    op.drop_index("ix_vgw_tasks_provider_task_id", "vgw_tasks")
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.drop_column("submit_started_at")
