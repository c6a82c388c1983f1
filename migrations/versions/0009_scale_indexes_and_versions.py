"""versions (change counters caches key on); indexes for a big database: votes by run and
by panel, generations by prompt, metrics by time

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "versions",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_votes_run_id", "votes", ["run_id", "id"])
    op.create_index("ix_votes_panel_id", "votes", ["panel_id", "id"])
    op.create_index("ix_generations_prompt", "generations", ["prompt_id", "seed"])
    op.create_index("ix_generation_metrics_created", "generation_metrics", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_generation_metrics_created", table_name="generation_metrics")
    op.drop_index("ix_generations_prompt", table_name="generations")
    op.drop_index("ix_votes_panel_id", table_name="votes")
    op.drop_index("ix_votes_run_id", table_name="votes")
    op.drop_table("versions")
