"""nodes, instance placement and logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:27:35.425153
"""

import sqlalchemy as sa
from alembic import op

import shoal.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "logs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("regional_deployment_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("stream", sa.String(length=8), nullable=False),
        sa.Column("msg", sa.Text(), nullable=False),
        sa.Column("created_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.create_index("ix_logs_instance", ["instance_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_logs_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index("ix_logs_service", ["service_id", "id"], unique=False)

    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("cpus", sa.Double(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("created_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", shoal.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("desired", sa.String(length=8), nullable=False, server_default="RUN")
        )
        batch_op.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_instances_node_id"), ["node_id"], unique=False)
        batch_op.create_foreign_key("fk_instances_node_id", "nodes", ["node_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_constraint("fk_instances_node_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_instances_node_id"))
        batch_op.drop_column("address")
        batch_op.drop_column("desired")
        batch_op.drop_column("node_id")

    op.drop_table("nodes")
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.drop_index("ix_logs_service")
        batch_op.drop_index(batch_op.f("ix_logs_organization_id"))
        batch_op.drop_index("ix_logs_instance")

    op.drop_table("logs")
