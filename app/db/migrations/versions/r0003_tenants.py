"""Tenants: managed tokens (``vgw_tokens``) and the result cache's two task columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.add_column(sa.Column("cache_key", sa.String(64)))
        batch.add_column(sa.Column("cached_from", sa.String(40)))
    op.create_index("ix_vgw_tasks_cache_key", "vgw_tasks", ["cache_key"])
    op.create_table(
        "vgw_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(16), nullable=False),
        sa.Column("previous_hash", sa.String(64)),
        sa.Column("previous_until", sa.DateTime(timezone=True)),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("requests_per_s", sa.Float),
        sa.Column("burst", sa.Integer),
        sa.Column("max_active_tasks", sa.Integer),
        sa.Column("tasks_per_day", sa.Integer),
        sa.Column("providers", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_vgw_tokens_previous_hash", "vgw_tokens", ["previous_hash"])


def downgrade() -> None:
    op.drop_table("vgw_tokens")
    op.drop_index("ix_vgw_tasks_cache_key", "vgw_tasks")
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.drop_column("cached_from")
        batch.drop_column("cache_key")
