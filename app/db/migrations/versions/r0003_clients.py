"""Clients: tasks remember the task they remix and when their owner deleted them (the row stays,
hidden), for the OpenAI-compatible ``/v1/videos``.

Revision ID: 0003_clients
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_clients"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.add_column(sa.Column("remixed_from", sa.String(40)))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("remixed_from")
