"""trust boundaries: run tokens, projects that trust code, replica tokens, cache provenance;
run records: lost runs, durations without idle time, steps' earlier attempts

Run tokens are keys of kind "run" bound to one run (``run_id``) with the model permissions its
pipeline declared (``grants``). Cache entries record what their producing run could do
(``trust``); entries written before this version had no such record and could have been
written by any write key, so they are dropped (the next run of each step fills the cache again).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (SQLite does them in place; a batch copy of a table that others refer
    # to fails on a home with data).
    op.add_column(
        "projects", sa.Column("trust_code", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("api_keys", sa.Column("run_id", sa.Integer(), nullable=True))
    op.add_column("api_keys", sa.Column("grants", sa.JSON(), nullable=True))
    op.create_index(op.f("ix_api_keys_run_id"), "api_keys", ["run_id"], unique=False)
    op.add_column(
        "replicas", sa.Column("token", sa.String(length=128), server_default="", nullable=False)
    )
    # Run records a person can trust: when a runner was last heard of (lost runs), the time
    # earlier attempts ran, and each step's earlier attempts.
    op.add_column("pipeline_runs", sa.Column("last_seen_at", sa.DateTime(timezone=True)))
    op.add_column(
        "pipeline_runs",
        sa.Column("prior_seconds", sa.Float(), server_default="0", nullable=False),
    )
    op.add_column(
        "pipeline_steps", sa.Column("history", sa.JSON(), nullable=False, server_default="[]")
    )
    op.execute("DELETE FROM pipeline_cache")
    op.add_column(
        "pipeline_cache", sa.Column("trust", sa.JSON(), nullable=False, server_default="[]")
    )


def downgrade() -> None:
    op.drop_column("pipeline_steps", "history")
    op.drop_column("pipeline_runs", "prior_seconds")
    op.drop_column("pipeline_runs", "last_seen_at")
    with op.batch_alter_table("pipeline_cache", schema=None) as batch_op:
        batch_op.drop_column("trust")
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.drop_column("token")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_run_id"))
        batch_op.drop_column("grants")
        batch_op.drop_column("run_id")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("trust_code")
