"""Long videos and what comes with every video: shot tasks point to their parent, and a
task keeps its poster frame, subtitles and platform caption.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(40)))
        batch.add_column(sa.Column("shot_index", sa.Integer))
        batch.add_column(sa.Column("thumbnail_key", sa.String(400)))
        batch.add_column(sa.Column("subtitles_key", sa.String(400)))
        batch.add_column(sa.Column("caption", sa.JSON))
    op.create_index("ix_vgw_tasks_parent_id", "vgw_tasks", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_vgw_tasks_parent_id", "vgw_tasks")
    with op.batch_alter_table("vgw_tasks") as batch:
        batch.drop_column("caption")
        batch.drop_column("subtitles_key")
        batch.drop_column("thumbnail_key")
        batch.drop_column("shot_index")
        batch.drop_column("parent_id")
