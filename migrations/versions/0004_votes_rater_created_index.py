"""votes: index (rater_id, created_at) for the per-rater rate limit

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 08:30:00.000000

The vote path counts a rater's votes of the last minute on every vote; the composite index
makes that a range scan and also serves every lookup by rater_id, so it replaces the
single-column index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.create_index("ix_votes_rater_created", ["rater_id", "created_at"], unique=False)
        batch_op.drop_index(batch_op.f("ix_votes_rater_id"))


def downgrade() -> None:
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_votes_rater_id"), ["rater_id"], unique=False)
        batch_op.drop_index("ix_votes_rater_created")
