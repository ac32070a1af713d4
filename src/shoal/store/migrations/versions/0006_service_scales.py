"""service scales: the autoscaler's last decision per region

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 14:30:00
"""

import sqlalchemy as sa
from alembic import op

import shoal.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_scales",
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("changed_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("panic_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("service_id", "region"),
    )


def downgrade() -> None:
    op.drop_table("service_scales")
