"""Initial schema: inventory, accounts, jobs, events, global configuration, capabilities.

Hyper-V 2012 (6.2) and 2012 R2 (6.3) start with storage_migration_supported = 0, as in
CloudStack before the storage-motion feature; revision 0002 enables 2012 R2.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 19:42:44.601063
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('account_type', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('configuration',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('default_value', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('disk_offerings',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('display_text', sa.String(length=4096), nullable=False),
    sa.Column('use_local_storage', sa.Boolean(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('disk_size', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('hypervisor_capabilities',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('hypervisor_type', sa.String(length=32), nullable=False),
    sa.Column('hypervisor_version', sa.String(length=32), nullable=False),
    sa.Column('max_guests_limit', sa.Integer(), nullable=False),
    sa.Column('max_data_volumes_limit', sa.Integer(), nullable=False),
    sa.Column('max_hosts_per_cluster', sa.Integer(), nullable=True),
    sa.Column('security_group_enabled', sa.Boolean(), nullable=False),
    sa.Column('storage_migration_supported', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('service_offerings',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('display_text', sa.String(length=4096), nullable=False),
    sa.Column('cpu_number', sa.Integer(), nullable=False),
    sa.Column('cpu_speed', sa.Integer(), nullable=False),
    sa.Column('memory', sa.BigInteger(), nullable=False),
    sa.Column('host_tags', sa.Text(), nullable=False),
    sa.Column('use_local_storage', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('zones',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('pods',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('users',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('password_hash', sa.String(length=512), nullable=True),
    sa.Column('api_key', sa.String(length=255), nullable=True),
    sa.Column('secret_key', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('api_key'),
    sa.UniqueConstraint('username'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('clusters',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('pod_id', sa.Integer(), nullable=False),
    sa.Column('hypervisor', sa.String(length=32), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['pod_id'], ['pods.id'], ),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uuid')
    )
    op.create_table('hosts',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('pod_id', sa.Integer(), nullable=False),
    sa.Column('cluster_id', sa.Integer(), nullable=False),
    sa.Column('hypervisor', sa.String(length=32), nullable=False),
    sa.Column('hypervisor_version', sa.String(length=32), nullable=False),
    sa.Column('cpu_number', sa.Integer(), nullable=False),
    sa.Column('cpu_speed', sa.Integer(), nullable=False),
    sa.Column('memory', sa.BigInteger(), nullable=False),
    sa.Column('host_tags', sa.Text(), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('resource_state', sa.String(length=32), nullable=False),
    sa.Column('agent_url', sa.String(length=512), nullable=True),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['cluster_id'], ['clusters.id'], ),
    sa.ForeignKeyConstraint(['pod_id'], ['pods.id'], ),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('uuid')
    )
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hosts_cluster_id'), ['cluster_id'], unique=False)

    op.create_table('async_jobs',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('command', sa.String(length=64), nullable=False),
    sa.Column('cmd', sa.String(length=255), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('proc_status', sa.Integer(), nullable=False),
    sa.Column('result_code', sa.Integer(), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=True),
    sa.Column('deadline_at', sa.DateTime(), nullable=True),
    sa.Column('lease_owner', sa.String(length=255), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('last_updated', sa.DateTime(), nullable=False),
    sa.Column('bytes_done', sa.BigInteger(), nullable=False),
    sa.Column('bytes_total', sa.BigInteger(), nullable=False),
    sa.Column('rate', sa.Float(), nullable=False),
    sa.Column('start_event_id', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uuid')
    )
    with op.batch_alter_table('async_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_async_jobs_status'), ['status'], unique=False)

    op.create_table('storage_pools',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('pod_id', sa.Integer(), nullable=True),
    sa.Column('cluster_id', sa.Integer(), nullable=True),
    sa.Column('host_id', sa.Integer(), nullable=True),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('is_local', sa.Boolean(), nullable=False),
    sa.Column('pool_type', sa.String(length=32), nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('capacity_bytes', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['cluster_id'], ['clusters.id'], ),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ),
    sa.ForeignKeyConstraint(['pod_id'], ['pods.id'], ),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('uuid')
    )
    with op.batch_alter_table('storage_pools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_storage_pools_cluster_id'), ['cluster_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_storage_pools_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_storage_pools_zone_id'), ['zone_id'], unique=False)

    op.create_table('virtual_machines',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('instance_name', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=True),
    sa.Column('last_host_id', sa.Integer(), nullable=True),
    sa.Column('service_offering_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('hypervisor', sa.String(length=32), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ),
    sa.ForeignKeyConstraint(['last_host_id'], ['hosts.id'], ),
    sa.ForeignKeyConstraint(['service_offering_id'], ['service_offerings.id'], ),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('uuid')
    )
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_virtual_machines_host_id'), ['host_id'], unique=False)

    op.create_table('events',
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('start_id', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['job_id'], ['async_jobs.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uuid')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_job_id'), ['job_id'], unique=False)

    op.create_table('job_resources',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('src_pool_id', sa.Integer(), nullable=True),
    sa.Column('dest_pool_id', sa.Integer(), nullable=True),
    sa.Column('src_host_id', sa.Integer(), nullable=True),
    sa.Column('dest_host_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['async_jobs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_resources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_resources_job_id'), ['job_id'], unique=False)

    op.create_table('volumes',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('zone_id', sa.Integer(), nullable=False),
    sa.Column('vm_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('volume_type', sa.String(length=16), nullable=False),
    sa.Column('pool_id', sa.Integer(), nullable=False),
    sa.Column('last_pool_id', sa.Integer(), nullable=True),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('disk_offering_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['disk_offering_id'], ['disk_offerings.id'], ),
    sa.ForeignKeyConstraint(['last_pool_id'], ['storage_pools.id'], ),
    sa.ForeignKeyConstraint(['pool_id'], ['storage_pools.id'], ),
    sa.ForeignKeyConstraint(['vm_id'], ['virtual_machines.id'], ),
    sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uuid')
    )
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volumes_pool_id'), ['pool_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volumes_vm_id'), ['vm_id'], unique=False)



    caps = sa.table("hypervisor_capabilities",
                    sa.column("uuid", sa.String), sa.column("hypervisor_type", sa.String),
                    sa.column("hypervisor_version", sa.String), sa.column("max_guests_limit", sa.Integer),
                    sa.column("max_data_volumes_limit", sa.Integer),
                    sa.column("security_group_enabled", sa.Boolean),
                    sa.column("storage_migration_supported", sa.Boolean))
    op.bulk_insert(caps, [
        {"uuid": "b8a2a1c6-0001-4f6e-9d1a-6a2e0c2f0062", "hypervisor_type": "Hyperv",
         "hypervisor_version": "6.2", "max_guests_limit": 1024, "max_data_volumes_limit": 64,
         "security_group_enabled": False, "storage_migration_supported": False},
        {"uuid": "b8a2a1c6-0001-4f6e-9d1a-6a2e0c2f0063", "hypervisor_type": "Hyperv",
         "hypervisor_version": "6.3", "max_guests_limit": 1024, "max_data_volumes_limit": 64,
         "security_group_enabled": False, "storage_migration_supported": False},
    ])
    config = sa.table("configuration", sa.column("name", sa.String), sa.column("value", sa.Text),
                      sa.column("default_value", sa.Text), sa.column("category", sa.String),
                      sa.column("description", sa.Text))
    op.bulk_insert(config, [
        {"name": "wait", "value": "1800", "default_value": "1800", "category": "Advanced",
         "description": "Time in seconds to wait for control commands to return; "
                        "storage motion waits wait x 2 for the agent."},
        {"name": "storage.overprovisioning.factor", "value": "2", "default_value": "2",
         "category": "Storage", "description": "Used for storage overprovisioning calculation."},
        {"name": "pool.storage.allocated.capacity.disablethreshold", "value": "0.85",
         "default_value": "0.85", "category": "Alert",
         "description": "Allocated share of a pool's capacity above which it takes no new volumes."},
    ])


def downgrade() -> None:
    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volumes_vm_id'))
        batch_op.drop_index(batch_op.f('ix_volumes_pool_id'))

    op.drop_table('volumes')
    with op.batch_alter_table('job_resources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_resources_job_id'))

    op.drop_table('job_resources')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_job_id'))

    op.drop_table('events')
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_virtual_machines_host_id'))

    op.drop_table('virtual_machines')
    with op.batch_alter_table('storage_pools', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_storage_pools_zone_id'))
        batch_op.drop_index(batch_op.f('ix_storage_pools_host_id'))
        batch_op.drop_index(batch_op.f('ix_storage_pools_cluster_id'))

    op.drop_table('storage_pools')
    with op.batch_alter_table('async_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_async_jobs_status'))

    op.drop_table('async_jobs')
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hosts_cluster_id'))

    op.drop_table('hosts')
    op.drop_table('clusters')
    op.drop_table('users')
    op.drop_table('pods')
    op.drop_table('zones')
    op.drop_table('service_offerings')
    op.drop_table('hypervisor_capabilities')
    op.drop_table('disk_offerings')
    op.drop_table('configuration')
    op.drop_table('accounts')
