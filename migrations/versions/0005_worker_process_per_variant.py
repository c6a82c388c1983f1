"""worker: a variant claimed whole and run in its own child process; two memory figures;
where, when and how cleanly each timing series ran

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("load_peak_gb", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("compile_cache", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("worker", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("process", sa.String(length=128), nullable=True))
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("process", sa.String(length=128), nullable=True))
    with op.batch_alter_table("timing_summaries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_key", sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column("process", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("started_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("finished_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("recompiles", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("graph_breaks", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("contention", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("contended", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timing_summaries", schema=None) as batch_op:
        for name in (
            "contended",
            "contention",
            "graph_breaks",
            "recompiles",
            "finished_at",
            "started_at",
            "process",
            "device_key",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("process")
    with op.batch_alter_table("variants", schema=None) as batch_op:
        for name in (
            "process",
            "heartbeat_at",
            "claimed_at",
            "worker",
            "compile_cache",
            "load_peak_gb",
        ):
            batch_op.drop_column(name)
