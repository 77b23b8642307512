"""message refs carry their workspace; executing requests carry their executor's heartbeat

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "release",
        sa.Column(
            "workspace_id",
            sqlmodel.sql.sqltypes.AutoString(length=64),
            nullable=False,
            server_default="",
        ),
    )
    op.add_column(
        "approval_request",
        sa.Column(
            "executor_id",
            sqlmodel.sql.sqltypes.AutoString(length=64),
            nullable=False,
            server_default="",
        ),
    )
    op.add_column(
        "approval_request",
        sa.Column("heartbeat_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("approval_request") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("executor_id")
    with op.batch_alter_table("release") as batch:
        batch.drop_column("workspace_id")
