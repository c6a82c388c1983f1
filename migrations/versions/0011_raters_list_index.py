"""raters(flagged, created_at, id): the admin's rater list read in index order, without a
sort of every rater per page (its order, flagged then newest, ends on the id)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 17:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # if_exists: development databases upgraded to an early 0010 never had it.
    op.drop_index("ix_raters_flagged_created", table_name="raters", if_exists=True)
    op.create_index("ix_raters_flagged_created", "raters", ["flagged", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_raters_flagged_created", table_name="raters")
    op.create_index("ix_raters_flagged_created", "raters", ["flagged", "created_at"])
