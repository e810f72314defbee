"""key kinds: dashboard sessions, sign-in links and group tokens; per-key networks and counts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="key", nullable=False)
        )
        batch_op.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("allow_cidrs", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("predictions", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_api_keys_parent_id"), ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_parent_id"))
        batch_op.drop_column("predictions")
        batch_op.drop_column("allow_cidrs")
        batch_op.drop_column("parent_id")
        batch_op.drop_column("kind")
