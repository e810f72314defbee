"""funade's record of the schedules it made on Vertex AI and Kubeflow

``remote_schedules``: one row per schedule ``funade pipeline submit --schedule`` made (the
engine keeps and runs it): its target, the engine's id for it, its console page, cron,
pipeline and who made it; ``funade pipeline follow`` updates the last job it recorded and when
it saw the schedule end.

Revision ID: 0012
Revises: 0011
Create Date: 2027-02-10 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "remote_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("engine_id", sa.String(length=512), nullable=False),
        sa.Column("console", sa.String(length=1024), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_job", sa.String(length=512), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_remote_schedules_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_schedules")),
        sa.UniqueConstraint(
            "project_id", "target", "engine_id", name=op.f("uq_remote_schedules_project_id")
        ),
    )
    with op.batch_alter_table("remote_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_remote_schedules_project_id"), ["project_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("remote_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remote_schedules_project_id"))
    op.drop_table("remote_schedules")
