"""Real time: a task's place in a provider's queue, when its provider finished (for progress
estimates), and the task events that feed the event streams (replayable by id).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.add_column(sa.Column("queue_position", sa.Integer))
        batch.add_column(sa.Column("generated_at", sa.DateTime(timezone=True)))
    op.create_table(
        "vgw_task_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_vgw_task_events_task_id", "vgw_task_events", ["task_id", "id"])
    op.create_index("ix_vgw_task_events_created_at", "vgw_task_events", ["created_at"])


def downgrade() -> None:
    op.drop_table("vgw_task_events")
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.drop_column("generated_at")
        batch.drop_column("queue_position")
