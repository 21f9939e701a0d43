"""Indexes for placement at scale: per-pool allocation sums of a zone from one index, and a
zone's pools by scope.

Placement sums the bytes of a zone's volumes per pool on every findHostsForMigration. With
(zone_id, pool_id) in order and size carried along, PostgreSQL answers from the index alone, in
pool order, without visiting the table (SQLite: the same three columns in the key). It reads a
zone's cluster, zone-wide and local pools apart, by (zone_id, scope).

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_volumes_zone_pool_size", "volumes", ["zone_id", "pool_id"],
                        postgresql_include=["size"])
    else:
        op.create_index("ix_volumes_zone_pool_size", "volumes", ["zone_id", "pool_id", "size"])
    op.create_index("ix_storage_pools_zone_scope", "storage_pools", ["zone_id", "scope"])


def downgrade() -> None:
    op.drop_index("ix_storage_pools_zone_scope", table_name="storage_pools")
    op.drop_index("ix_volumes_zone_pool_size", table_name="volumes")
