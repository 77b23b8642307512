"""certificates flybot watches: their thread, last status, expiry and warnings sent

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "certificate_watch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", _text(100), nullable=False),
        sa.Column("stage", _text(100), nullable=False),
        sa.Column("app", _text(100), nullable=False),
        sa.Column("hostname", _text(253), nullable=False),
        sa.Column("state", _text(16), nullable=False),
        sa.Column("status", _text(32), nullable=False),
        sa.Column("errors_digest", _text(64), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("warned_days", _text(32), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("platform", _text(16), nullable=False),
        sa.Column("workspace_id", _text(64), nullable=False),
        sa.Column("channel_id", _text(100), nullable=False),
        sa.Column("thread_id", _text(100), nullable=False),
        sa.Column("message_id", _text(100), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["requested_by"], ["principal.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("app", "hostname"),
    )
    op.create_index(
        op.f("ix_certificate_watch_state"), "certificate_watch", ["state"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_certificate_watch_state"), table_name="certificate_watch")
    op.drop_table("certificate_watch")
