"""secrets set through flybot (names and Fly's secrets versions, never values), and the
secrets version each release's machines were given

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "secrets_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", _text(100), nullable=False),
        sa.Column("stage", _text(100), nullable=False),
        sa.Column("app", _text(100), nullable=False),
        sa.Column("name", _text(128), nullable=False),
        sa.Column("change", _text(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("requester_name", _text(200), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["requested_by"], ["principal.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_secrets_change_app"), "secrets_change", ["app"], unique=False)
    op.add_column("release", sa.Column("secrets_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("release") as batch:
        batch.drop_column("secrets_version")
    op.drop_index(op.f("ix_secrets_change_app"), table_name="secrets_change")
    op.drop_table("secrets_change")
