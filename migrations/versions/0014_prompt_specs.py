"""prompts.spec: a shapes-world prompt's scene (canonical JSON, app/training/shapes.py), so
the adherence oracle (app/quality/adherence.py) can judge its images; "" for a prompt that
states nothing checkable (PartiPrompts), whose images get no adherence row: not applicable,
never 0

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prompts") as batch:
        batch.add_column(sa.Column("spec", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("prompts") as batch:
        batch.drop_column("spec")
