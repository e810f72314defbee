"""one-time sign-in links in a table of their own; the old link keys revoked

A sign-in link used to be an API key of kind ``link``: a bearer token for the whole API for 60
minutes, which two concurrent sign-ins could both use. Links are now ``signin_links`` rows, used
once by a conditional UPDATE; the old ``link`` keys stop working here (revoked now; check_key
refuses the kind as well). Downgrading drops the table and leaves those keys revoked.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 07:10:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signin_links",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_signin_links_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_links")),
    )
    with op.batch_alter_table("signin_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signin_links_key_id"), ["key_id"], unique=False)
    api_keys = sa.table(
        "api_keys", sa.column("kind", sa.String()), sa.column("revoked_at", sa.DateTime(True))
    )
    op.execute(
        api_keys.update()
        .where(api_keys.c.kind == "link", api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


def downgrade() -> None:
    with op.batch_alter_table("signin_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signin_links_key_id"))
    op.drop_table("signin_links")
