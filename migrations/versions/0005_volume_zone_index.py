"""Index volumes by zone: placement sums the bytes allocated per pool over one zone's volumes.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("volumes") as batch:
        batch.create_index("ix_volumes_zone_id", ["zone_id"])


def downgrade() -> None:
    with op.batch_alter_table("volumes") as batch:
        batch.drop_index("ix_volumes_zone_id")
