"""Admission limits, progress, cancel and recovery: per-host storage-migration limits (capability
default 2, per-host override), the job's destination host, cancel requests, per-volume progress,
ETA, a visible status text, the pool cap and agent give-up settings, and indexes for the
suitability queries.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hypervisor_capabilities") as batch:
        batch.add_column(sa.Column("max_storage_migrations", sa.Integer(), nullable=False,
                                   server_default="2"))
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("max_storage_migrations", sa.Integer(), nullable=True))
        batch.create_index("ix_hosts_zone_id", ["zone_id"])
    with op.batch_alter_table("async_jobs") as batch:
        batch.add_column(sa.Column("dest_host_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cancel_requested_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("cancel_requested_by", sa.String(255), nullable=True))
        batch.add_column(sa.Column("eta", sa.Float(), nullable=True))
        batch.add_column(sa.Column("progress", sa.Text(), nullable=True))
        batch.add_column(sa.Column("status_text", sa.String(1000), nullable=True))
        batch.create_index("ix_async_jobs_status_phase", ["status", "phase"])
    with op.batch_alter_table("virtual_machines") as batch:
        batch.create_index("ix_virtual_machines_zone_id", ["zone_id"])
    config = sa.table("configuration", sa.column("name", sa.String), sa.column("value", sa.Text),
                      sa.column("default_value", sa.Text), sa.column("category", sa.String),
                      sa.column("description", sa.Text))
    op.bulk_insert(config, [
        {"name": "pool.storage.migration.limit", "value": "8", "default_value": "8",
         "category": "Storage",
         "description": "Most storage migrations running at once into or out of one pool."},
        {"name": "agent.unreachable.giveup", "value": "1800", "default_value": "1800",
         "category": "Advanced",
         "description": "Seconds past a job's deadline during which an unreachable agent is retried "
                        "before the job fails with its volumes where the agent last said they were."},
    ])


def downgrade() -> None:
    op.execute("DELETE FROM configuration WHERE name IN ('pool.storage.migration.limit', "
               "'agent.unreachable.giveup')")
    with op.batch_alter_table("virtual_machines") as batch:
        batch.drop_index("ix_virtual_machines_zone_id")
    with op.batch_alter_table("async_jobs") as batch:
        batch.drop_index("ix_async_jobs_status_phase")
        for column in ("status_text", "progress", "eta", "cancel_requested_by", "cancel_requested_at", "dest_host_id"):
            batch.drop_column(column)
    with op.batch_alter_table("hosts") as batch:
        batch.drop_index("ix_hosts_zone_id")
        batch.drop_column("max_storage_migrations")
    with op.batch_alter_table("hypervisor_capabilities") as batch:
        batch.drop_column("max_storage_migrations")
