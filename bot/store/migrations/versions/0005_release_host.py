"""a release records the host of the process running it beside that process's own id

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "release",
        sa.Column(
            "host",
            sqlmodel.sql.sqltypes.AutoString(length=64),
            nullable=False,
            server_default="",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("release") as batch:
        batch.drop_column("host")
