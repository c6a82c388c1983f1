"""arena: the network (IPv4 address, IPv6 /64) each vote and each new rater came from, for
per-network limits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("network", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_votes_network_created", ["network", "created_at"], unique=False)
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("network", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_raters_network_created", ["network", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("raters", schema=None) as batch_op:
        batch_op.drop_index("ix_raters_network_created")
        batch_op.drop_column("network")
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.drop_index("ix_votes_network_created")
        batch_op.drop_column("network")
