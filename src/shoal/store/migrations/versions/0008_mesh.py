"""mesh: each organization's block of private addresses, each web service's addresses

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mesh_blocks",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organization_id"),
        sa.UniqueConstraint("index"),
    )
    op.create_table(
        "mesh_addresses",
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("address", sa.String(length=15), nullable=False),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("service_id", "scope"),
        sa.UniqueConstraint("address"),
    )
    with op.batch_alter_table("mesh_addresses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mesh_addresses_organization_id"), ["organization_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mesh_addresses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mesh_addresses_organization_id"))
    op.drop_table("mesh_addresses")
    op.drop_table("mesh_blocks")
