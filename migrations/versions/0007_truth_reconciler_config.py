"""Configuration rows for the reconciler against the agents' truth, so that listConfigurations
shows them and updateConfiguration can change them.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    config = sa.table("configuration", sa.column("name", sa.String), sa.column("value", sa.Text),
                      sa.column("default_value", sa.Text), sa.column("category", sa.String),
                      sa.column("description", sa.Text))
    op.bulk_insert(config, [
        {"name": "reconcile.truth.interval", "value": "300", "default_value": "300", "category": "Advanced",
         "description": "Seconds between two runs of the reconciler that compares Ready volumes and Running "
                        "VMs with the agents' truth; 0 turns it off."},
        {"name": "reconcile.truth.batch", "value": "500", "default_value": "500", "category": "Advanced",
         "description": "Most volumes, and most VMs, one run of the truth reconciler checks."},
    ])


def downgrade() -> None:
    op.execute("DELETE FROM configuration WHERE name IN ('reconcile.truth.interval', 'reconcile.truth.batch')")
