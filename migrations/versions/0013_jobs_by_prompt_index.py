"""jobs(prompt_id, seed, width, height): the gallery reads the jobs of a page of prompts at
one seed and size (every variant's cell status); no index served it, which cost ~11 ms of
/prompts on a 78k-image run (the unique key leads with the variant)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_prompt_image", "jobs", ["prompt_id", "seed", "width", "height"])


def downgrade() -> None:
    op.drop_index("ix_jobs_prompt_image", table_name="jobs")
