"""The video's last frame: ``return_last_frame`` stores it beside the video (its storage key).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.add_column(sa.Column("last_frame_key", sa.String(400)))


def downgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.drop_column("last_frame_key")
