"""instance usages: each instance's run, kept for usage after its rows are gone

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 15:20:00
"""

import sqlalchemy as sa
from alembic import op

import shoal.store.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_usages",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("app_name", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("service_name", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("regional_deployment_id", sa.String(length=36), nullable=False),
        sa.Column("instance_type", sa.String(length=32), nullable=False),
        sa.Column("started_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("terminated_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("instance_id"),
    )
    op.create_index(
        "ix_instance_usages_org_start", "instance_usages", ["organization_id", "started_at"]
    )
    # The runs of the instances there are already.
    op.execute(
        """
        INSERT INTO instance_usages
        SELECT i.id, i.organization_id, i.app_id, a.name, i.service_id, s.name, i.region,
               i.deployment_id, i.regional_deployment_id, i.type, i.started_at, i.terminated_at
        FROM instances i JOIN apps a ON a.id = i.app_id JOIN services s ON s.id = i.service_id
        WHERE i.started_at IS NOT NULL
        """
    )


def downgrade() -> None:
    op.drop_index("ix_instance_usages_org_start", table_name="instance_usages")
    op.drop_table("instance_usages")
