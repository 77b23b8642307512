"""usage: daily samples and their claims, report subscriptions, alerts sent

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _time() -> sqlmodel.sql.sqltypes.UTCDateTime:
    return sqlmodel.sql.sqltypes.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "usage_day",
        sa.Column("day", _text(10), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("claimed_by", _text(64), nullable=False),
        sa.Column("claimed_at", _time(), nullable=False),
        sa.Column("collected_at", _time(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("note", _text(300), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_index(op.f("ix_usage_day_status"), "usage_day", ["status"], unique=False)
    op.create_table(
        "usage_sample",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", _text(10), nullable=False),
        sa.Column("kind", _text(16), nullable=False),
        sa.Column("app", _text(100), nullable=False),
        sa.Column("key", _text(100), nullable=False),
        sa.Column("region", _text(16), nullable=False),
        sa.Column("cpu_kind", _text(16), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("running_s", sa.Float(), nullable=False),
        sa.Column("stopped_s", sa.Float(), nullable=False),
        sa.Column("size_gb", sa.Float(), nullable=False),
        sa.Column("bytes_out", sa.Float(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("day", "kind", "app", "key"),
    )
    op.create_index(op.f("ix_usage_sample_day"), "usage_sample", ["day"], unique=False)
    op.create_table(
        "usage_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule", _text(100), nullable=False),
        sa.Column("project", _text(100), nullable=False),
        sa.Column("platform", _text(16), nullable=False),
        sa.Column("workspace_id", _text(64), nullable=False),
        sa.Column("channel_id", _text(100), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_by_name", _text(200), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("next_at", _time(), nullable=False),
        sa.Column("last_sent_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["principal.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_usage_subscription_next_at"), "usage_subscription", ["next_at"], unique=False
    )
    op.create_table(
        "usage_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", _text(7), nullable=False),
        sa.Column("metric", _text(32), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("message", _text(500), nullable=False),
        sa.Column("action_line", _text(300), nullable=False),
        sa.Column("sent_by", _text(64), nullable=False),
        sa.Column("sent_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("month", "metric", "threshold"),
    )


def downgrade() -> None:
    op.drop_table("usage_alert")
    op.drop_index(op.f("ix_usage_subscription_next_at"), table_name="usage_subscription")
    op.drop_table("usage_subscription")
    op.drop_index(op.f("ix_usage_sample_day"), table_name="usage_sample")
    op.drop_table("usage_sample")
    op.drop_index(op.f("ix_usage_day_status"), table_name="usage_day")
    op.drop_table("usage_day")
