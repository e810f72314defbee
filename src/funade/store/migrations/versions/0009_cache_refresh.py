"""cache modes of a run: --refresh (runs every step and writes the cache) besides --no-cache

``pipeline_runs.refresh_cache``: the run reads no cache entry but writes its steps' outputs.
``use_cache`` false now means the run neither reads nor writes the cache (it used to write).

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-12 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(  # a plain ADD COLUMN: SQLite does it in place
        "pipeline_runs",
        sa.Column("refresh_cache", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.drop_column("refresh_cache")
