"""proxy ports: the edge's public TCP port of each proxied port of a service

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 14:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxy_ports",
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("public_port", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("service_id", "port"),
        sa.UniqueConstraint("public_port"),
    )


def downgrade() -> None:
    op.drop_table("proxy_ports")
