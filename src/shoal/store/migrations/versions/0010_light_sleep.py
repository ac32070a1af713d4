"""light sleep: a region's sleep level, the nodes' thaw sockets, instances' frozen times

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 17:00:00
"""

import sqlalchemy as sa
from alembic import op

import shoal.store.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_scales") as batch:
        batch.add_column(
            sa.Column("light", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column("waker", sa.String(length=255), server_default="", nullable=False)
        )
    op.create_table(
        "instance_sleeps",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("instance_id", "started_at"),
    )


def downgrade() -> None:
    op.drop_table("instance_sleeps")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("waker")
    with op.batch_alter_table("service_scales") as batch:
        batch.drop_column("light")
