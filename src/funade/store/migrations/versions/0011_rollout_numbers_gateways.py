"""rollouts numbered per deployment; the routing each gateway serves

``rollouts.number``: 1, 2, … within a deployment (``id`` is global, so a deployment's first
rollout could read "rollout 2 of cancer"); existing rollouts are numbered in the order they
were made. ``gateways``: what each running gateway has loaded (the routing generation and the
revisions with ready replicas, per deployment), so a command that changes routing can wait
until the gateways serve it.

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-27 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite does it in place), then the numbers, then their index.
    op.add_column("rollouts", sa.Column("number", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE rollouts SET number = (SELECT COUNT(*) FROM rollouts AS earlier"
        " WHERE earlier.deployment_id = rollouts.deployment_id AND earlier.id <= rollouts.id)"
    )
    op.create_index(
        "ix_rollouts_deployment_id_number", "rollouts", ["deployment_id", "number"], unique=True
    )
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("routes", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
    )


def downgrade() -> None:
    op.drop_table("gateways")
    op.drop_index("ix_rollouts_deployment_id_number", table_name="rollouts")
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_column("number")
