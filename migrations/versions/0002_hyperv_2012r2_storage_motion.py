"""Enable storage motion for Hyper-V 2012 R2 (6.3) only, as the seed specification asks.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE hypervisor_capabilities SET storage_migration_supported = true "
               "WHERE hypervisor_type = 'Hyperv' AND hypervisor_version = '6.3'")


def downgrade() -> None:
    op.execute("UPDATE hypervisor_capabilities SET storage_migration_supported = false "
               "WHERE hypervisor_type = 'Hyperv' AND hypervisor_version = '6.3'")
