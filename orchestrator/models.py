"""Typed SQLAlchemy 2 models of the inventory, the async jobs and the audit trail.

Alembic owns the schema (``migrations/``); these classes describe it for the ORM and must match
the latest revision. Every object has an internal integer ``id`` and a public ``uuid``; the API
only ever shows UUIDs. Times are naive UTC.
"""
from __future__ import annotations

import uuid as uuidlib
from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, BigInteger, String, Text, Float
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


class Base(DeclarativeBase):
    pass


class _Identified:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(40), unique=True, default=new_uuid)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Zone(_Identified, Base):
    __tablename__ = "zones"
    name: Mapped[str] = mapped_column(String(255), unique=True)


class Pod(_Identified, Base):
    __tablename__ = "pods"
    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    zone: Mapped[Zone] = relationship()


class Cluster(_Identified, Base):
    __tablename__ = "clusters"
    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    pod_id: Mapped[int] = mapped_column(ForeignKey("pods.id"))
    hypervisor: Mapped[str] = mapped_column(String(32), default="Hyperv")
    zone: Mapped[Zone] = relationship()
    pod: Mapped[Pod] = relationship()


class Host(_Identified, Base):
    __tablename__ = "hosts"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    pod_id: Mapped[int] = mapped_column(ForeignKey("pods.id"))
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"), index=True)
    hypervisor: Mapped[str] = mapped_column(String(32), default="Hyperv")
    hypervisor_version: Mapped[str] = mapped_column(String(32))
    cpu_number: Mapped[int] = mapped_column(Integer)
    cpu_speed: Mapped[int] = mapped_column(Integer)  # MHz per core
    memory: Mapped[int] = mapped_column(BigInteger)  # bytes
    host_tags: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    ip_address: Mapped[str] = mapped_column(String(64), default="127.0.0.1")
    status: Mapped[str] = mapped_column(String(32), default="Up")  # Up / Down / Disconnected
    resource_state: Mapped[str] = mapped_column(String(32), default="Enabled")  # Enabled / Disabled / Maintenance
    agent_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # None: the hypervisor capability's limit applies.
    max_storage_migrations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    zone: Mapped[Zone] = relationship()
    pod: Mapped[Pod] = relationship()
    cluster: Mapped[Cluster] = relationship()


class StoragePool(_Identified, Base):
    __tablename__ = "storage_pools"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    pod_id: Mapped[int | None] = mapped_column(ForeignKey("pods.id"), nullable=True)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), nullable=True, index=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), nullable=True, index=True)
    scope: Mapped[str] = mapped_column(String(16))  # HOST / CLUSTER / ZONE
    is_local: Mapped[bool] = mapped_column(Boolean, default=False)
    pool_type: Mapped[str] = mapped_column(String(32))  # SMB (shared) / Filesystem (local)
    path: Mapped[str] = mapped_column(String(512))
    tags: Mapped[str] = mapped_column(Text, default="")  # comma-separated storage tags
    capacity_bytes: Mapped[int] = mapped_column(BigInteger)
    # The sum of the sizes of the volumes on the pool, kept by triggers on volumes (migration
    # 0008) in the transaction that changes them; read it with a query, never set it.
    allocated_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    state: Mapped[str] = mapped_column(String(32), default="Up")  # Up / Disabled / Maintenance
    zone: Mapped[Zone] = relationship()
    pod: Mapped[Pod | None] = relationship()
    cluster: Mapped[Cluster | None] = relationship()
    host: Mapped[Host | None] = relationship()


class DiskOffering(_Identified, Base):
    __tablename__ = "disk_offerings"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    display_text: Mapped[str] = mapped_column(String(4096), default="")
    use_local_storage: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[str] = mapped_column(Text, default="")
    disk_size: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes, 0 = custom


class ServiceOffering(_Identified, Base):
    __tablename__ = "service_offerings"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    display_text: Mapped[str] = mapped_column(String(4096), default="")
    cpu_number: Mapped[int] = mapped_column(Integer)
    cpu_speed: Mapped[int] = mapped_column(Integer)
    memory: Mapped[int] = mapped_column(BigInteger)  # bytes
    host_tags: Mapped[str] = mapped_column(Text, default="")
    use_local_storage: Mapped[bool] = mapped_column(Boolean, default=False)


class Account(_Identified, Base):
    __tablename__ = "accounts"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # CloudStack account types: 0 user, 1 root admin, 2 domain admin.
    account_type: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32), default="enabled")


class User(_Identified, Base):
    __tablename__ = "users"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    username: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(512), nullable=True)
    api_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    secret_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    state: Mapped[str] = mapped_column(String(32), default="enabled")
    account: Mapped[Account] = relationship()


class VirtualMachine(_Identified, Base):
    __tablename__ = "virtual_machines"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    instance_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), nullable=True, index=True)
    last_host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), nullable=True)
    service_offering_id: Mapped[int] = mapped_column(ForeignKey("service_offerings.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    hypervisor: Mapped[str] = mapped_column(String(32), default="Hyperv")
    zone: Mapped[Zone] = relationship()
    host: Mapped[Host | None] = relationship(foreign_keys=[host_id])
    service_offering: Mapped[ServiceOffering] = relationship()
    account: Mapped[Account] = relationship()


class Volume(_Identified, Base):
    __tablename__ = "volumes"
    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    vm_id: Mapped[int | None] = mapped_column(ForeignKey("virtual_machines.id"), nullable=True, index=True)
    device_id: Mapped[int] = mapped_column(Integer, default=0)
    volume_type: Mapped[str] = mapped_column(String(16))  # ROOT / DATADISK
    pool_id: Mapped[int] = mapped_column(ForeignKey("storage_pools.id"), index=True)
    last_pool_id: Mapped[int | None] = mapped_column(ForeignKey("storage_pools.id"), nullable=True)
    path: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)  # bytes
    state: Mapped[str] = mapped_column(String(32), default="Ready")
    disk_offering_id: Mapped[int] = mapped_column(ForeignKey("disk_offerings.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    zone: Mapped[Zone] = relationship()
    vm: Mapped[VirtualMachine | None] = relationship()
    pool: Mapped[StoragePool] = relationship(foreign_keys=[pool_id])
    disk_offering: Mapped[DiskOffering] = relationship()
    account: Mapped[Account] = relationship()


class AsyncJob(_Identified, Base):
    """One API job. The row is the truth about the job; a broker message only wakes a worker."""

    __tablename__ = "async_jobs"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    command: Mapped[str] = mapped_column(String(64))  # API command name, e.g. migrateVolume
    cmd: Mapped[str] = mapped_column(String(255))  # CloudStack's command class name
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON of the request parameters
    status: Mapped[int] = mapped_column(Integer, default=0)  # indexed with phase (ix_async_jobs_status_phase)
    proc_status: Mapped[int] = mapped_column(Integer, default=0)
    result_code: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    phase: Mapped[str] = mapped_column(String(16), default="queued")
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), nullable=True)  # agent host
    dest_host_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a VM's new host
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    published_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    rate: Mapped[float] = mapped_column(Float, default=0.0)  # bytes per second
    start_event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    eta: Mapped[float | None] = mapped_column(Float, nullable=True)  # seconds
    progress: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, per volume
    status_text: Mapped[str | None] = mapped_column(String(1000), nullable=True)  # why it waits


class JobResource(Base):
    """What a job owns and where it moves it, so that finish and rollback know what to put back."""

    __tablename__ = "job_resources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("async_jobs.id"), index=True)
    resource_type: Mapped[str] = mapped_column(String(32))  # Volume / VirtualMachine
    resource_id: Mapped[int] = mapped_column(Integer)
    src_pool_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dest_pool_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    src_host_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dest_host_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ExpiredJobTotals(Base):
    """What the jobs expunged so far (``orchestrator.expiry``) add to the metrics computed from
    the jobs table, so that its counters and histograms never go down: per command and status."""

    __tablename__ = "expired_job_totals"
    command: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[int] = mapped_column(Integer, primary_key=True)
    jobs: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    # histograms as JSON {"count": n, "sum": seconds, "buckets": {"<le>": n, ...}} (metrics.BUCKETS)
    duration: Mapped[str] = mapped_column(Text, default="{}")  # submission to completion
    run: Mapped[str] = mapped_column(Text, default="{}")  # dispatch to completion


class Event(_Identified, Base):
    __tablename__ = "events"
    type: Mapped[str] = mapped_column(String(64))  # VOLUME.MIGRATE, VM.MIGRATE
    state: Mapped[str] = mapped_column(String(32))  # Scheduled / Started / Completed
    level: Mapped[str] = mapped_column(String(16), default="INFO")
    description: Mapped[str] = mapped_column(Text)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("async_jobs.id"), nullable=True, index=True)
    start_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class HypervisorCapability(Base):
    __tablename__ = "hypervisor_capabilities"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(40), unique=True, default=new_uuid)
    hypervisor_type: Mapped[str] = mapped_column(String(32))
    hypervisor_version: Mapped[str] = mapped_column(String(32))
    max_guests_limit: Mapped[int] = mapped_column(Integer, default=1024)
    max_data_volumes_limit: Mapped[int] = mapped_column(Integer, default=64)
    max_hosts_per_cluster: Mapped[int | None] = mapped_column(Integer, nullable=True)
    security_group_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    storage_migration_supported: Mapped[bool] = mapped_column(Boolean, default=False)
    max_storage_migrations: Mapped[int] = mapped_column(Integer, default=2)


class Configuration(Base):
    """CloudStack's global configuration (``wait`` and friends)."""

    __tablename__ = "configuration"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    default_value: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64), default="Advanced")
    description: Mapped[str] = mapped_column(Text, default="")
