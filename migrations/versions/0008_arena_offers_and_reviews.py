"""matchups.nonce (a matchup row is written with its vote now, not when it is shown; the
rows that page views wrote and nobody answered are removed); integrity_reviews (an admin's
decision to count a flagged rater's or network's votes)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("matchups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nonce", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_matchups_nonce", ["nonce"], unique=True)
    # Before 0008 every anonymous GET /arena wrote a matchup (and, without a cookie, a
    # rater). Their tokens no longer open, so the unanswered matchups can never be answered;
    # raters with no vote, no panel and no attention tally were only page views.
    op.execute("DELETE FROM matchups WHERE answered_at IS NULL")
    op.execute(
        "DELETE FROM raters WHERE panel_id IS NULL AND attention_passed = 0"
        " AND attention_failed = 0"
        " AND NOT EXISTS (SELECT 1 FROM votes WHERE votes.rater_id = raters.id)"
        " AND NOT EXISTS (SELECT 1 FROM matchups WHERE matchups.rater_id = raters.id)"
    )

    op.create_table(
        "integrity_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "kind", "subject"),
    )


def downgrade() -> None:
    op.drop_table("integrity_reviews")
    with op.batch_alter_table("matchups", schema=None) as batch_op:
        batch_op.drop_index("ix_matchups_nonce")
        batch_op.drop_column("nonce")
