"""whether a version's package runs code on load, decided at registration

``model_versions.runs_code``: what ``flavors.loads_code`` said of the manifest when the version
was registered, so a deploy call need not decide it again (for a skops package that imports
scikit-learn in the control plane). NULL for versions registered before: decided at deploy.

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-20 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(  # a plain ADD COLUMN: SQLite does it in place
        "model_versions", sa.Column("runs_code", sa.Boolean(), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("runs_code")
