"""each mirrored project and stage records the flybot.toml that wrote it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("project", "stage"):
        op.add_column(
            table,
            sa.Column(
                "source",
                sqlmodel.sql.sqltypes.AutoString(length=500),
                nullable=False,
                server_default="",
            ),
        )


def downgrade() -> None:
    for table in ("stage", "project"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("source")
