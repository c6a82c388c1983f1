"""leaderboard_snapshots: the latest computed leaderboard per board, shared by every server
process and the CLI; indexes for the admin's rater list and panel counts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leaderboard_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("panel", sa.BigInteger(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("view", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "panel", "rounds"),
    )
    op.create_index("ix_raters_flagged_created", "raters", ["flagged", "created_at"])
    op.create_index("ix_raters_panel", "raters", ["panel_id"])


def downgrade() -> None:
    op.drop_index("ix_raters_panel", table_name="raters")
    op.drop_index("ix_raters_flagged_created", table_name="raters")
    op.drop_table("leaderboard_snapshots")
