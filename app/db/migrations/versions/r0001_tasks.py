"""The task table as the gateway had it before migrations (leases included).

A database made by an earlier gateway already has ``vgw_tasks``: it is adopted as found, gaining
the lease columns if it predates them.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_INDEXED = ("owner", "status", "group_id", "lease_until", "created_at")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if inspector.has_table("vgw_tasks"):
        present = {c["name"] for c in inspector.get_columns("vgw_tasks")}
        with op.batch_alter_table("vgw_tasks") as batch:
            if "lease_owner" not in present:
                batch.add_column(sa.Column("lease_owner", sa.String(64)))
            if "lease_until" not in present:
                batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))
        indexes = {index["name"] for index in inspector.get_indexes("vgw_tasks")}
        if "ix_vgw_tasks_lease_until" not in indexes:
            op.create_index("ix_vgw_tasks_lease_until", "vgw_tasks", ["lease_until"])
        return
    op.create_table(
        "vgw_tasks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16)),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(32)),
        sa.Column("provider_task_id", sa.String(200)),
        sa.Column("provider_status", sa.String(64)),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("expanded_prompt", sa.Text),
        sa.Column("expanded_by", sa.String(16)),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("route", sa.JSON, nullable=False),
        sa.Column("video_key", sa.String(400)),
        sa.Column("video_size", sa.BigInteger),
        sa.Column("video_sha256", sa.String(64)),
        sa.Column("filename", sa.String(200)),
        sa.Column("error", sa.JSON),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("callback_url", sa.Text),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("group_id", sa.String(40)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_vgw_tasks_idempotency"),
    )
    for column in _INDEXED:
        op.create_index(f"ix_vgw_tasks_{column}", "vgw_tasks", [column])


def downgrade() -> None:
    op.drop_table("vgw_tasks")
