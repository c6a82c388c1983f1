"""Sizes and batch sizes (issue 12): jobs carry the size of their image (one image per
variant, prompt, seed and size), a job may end "does_not_fit", and shape_series holds a
variant's steady state per (size, batch size)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How the first migration's unnamed UNIQUE(variant_id, prompt_id, seed) is found: PostgreSQL
# named it itself; SQLite's is reached through a naming convention in batch mode.
PG_OLD_UNIQUE = "jobs_variant_id_prompt_id_seed_key"
CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
SQLITE_OLD_UNIQUE = "uq_jobs_variant_id_prompt_id_seed"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("jobs", naming_convention=CONVENTION) as batch:
        batch.add_column(sa.Column("width", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("height", sa.Integer(), nullable=True))
        batch.drop_constraint(PG_OLD_UNIQUE if postgres else SQLITE_OLD_UNIQUE, type_="unique")
    # Every job so far was at its run's one size.
    op.execute(
        "UPDATE jobs SET width = (SELECT width FROM runs WHERE runs.id = jobs.run_id), "
        "height = (SELECT height FROM runs WHERE runs.id = jobs.run_id)"
    )
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("width", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("height", existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint(
            "uq_jobs_image", ["variant_id", "prompt_id", "seed", "width", "height"]
        )
    op.create_table(
        "shape_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "measured",
                "does_not_fit",
                "skipped",
                name="series_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("warmup", sa.Integer(), nullable=False),
        sa.Column("latency_median_s", sa.Float(), nullable=True),
        sa.Column("latency_p10_s", sa.Float(), nullable=True),
        sa.Column("latency_p90_s", sa.Float(), nullable=True),
        sa.Column("latency_mean_s", sa.Float(), nullable=True),
        sa.Column("latency_min_s", sa.Float(), nullable=True),
        sa.Column("latency_max_s", sa.Float(), nullable=True),
        sa.Column("first_call_s", sa.Float(), nullable=True),
        sa.Column("first_call_graphs", sa.Integer(), nullable=True),
        sa.Column("peak_mem_gb", sa.Float(), nullable=True),
        sa.Column("peak_mem_kind", sa.String(length=32), nullable=True),
        sa.Column("device_total_gb", sa.Float(), nullable=True),
        sa.Column("batch_compared", sa.Integer(), nullable=True),
        sa.Column("batch_identical", sa.Integer(), nullable=True),
        sa.Column("batch_ssim_mean", sa.Float(), nullable=True),
        sa.Column("batch_ssim_min", sa.Float(), nullable=True),
        sa.Column("batch_psnr_min_db", sa.Float(), nullable=True),
        sa.Column("recompiles", sa.Integer(), nullable=True),
        sa.Column("graph_breaks", sa.Integer(), nullable=True),
        sa.Column("contention", sa.JSON(), nullable=True),
        sa.Column("contended", sa.Boolean(), nullable=True),
        sa.Column("process", sa.String(length=128), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["variant_id"], ["variants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("variant_id", "width", "height", "batch_size"),
    )


def downgrade() -> None:
    op.drop_table("shape_series")
    op.execute("DELETE FROM jobs WHERE status = 'does_not_fit'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_image", type_="unique")
        batch.create_unique_constraint(
            "uq_jobs_variant_id_prompt_id_seed", ["variant_id", "prompt_id", "seed"]
        )
        batch.drop_column("height")
        batch.drop_column("width")
