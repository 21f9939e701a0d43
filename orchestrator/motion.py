"""Intake: validate a migration request, move its objects to Migrating, record the job, enqueue.

Everything the request needs is checked before anything changes; the state changes, the job row
and the Scheduled event are one transaction; the job id is published only after that commit.

A ``migrateVolume`` costs one unit of work (the API's own, see ``accept_volume_migration``): the
volume with its VM, host, pools and offering and the destination pool in one statement (the API
loads them), the capability, the destination's allocation, the overprovisioning factor and the
job's and event's ids in a second, the two compare-and-set UPDATEs in a third and the three
INSERTs in a fourth (on PostgreSQL; SQLite runs them one by one), and the commit. Publishing after
the commit stamps ``published_at`` in one round trip, a transaction that does not wait for its
WAL flush: losing that stamp in a database crash only makes the sweep publish the job again
(``publish_unpublished``), and a second wake-up is harmless (the lease guards the job).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import bindparam, exists, func, insert, literal_column, select, update
from sqlalchemy.orm import Session, joinedload

from . import events, globalconfig, logcontext, placement
from .db import Database, driver_execute, insert_together
from .errors import InvalidParameter
from .models import (AsyncJob, Configuration, Event, HypervisorCapability, JobResource, StoragePool,
                     VirtualMachine, Volume, new_uuid, utcnow)
from .states import JobPhase, VmState, VolumeState

log = logging.getLogger(__name__)

MIGRATE_VOLUME_CMD = "org.apache.cloudstack.api.command.admin.volume.MigrateVolumeCmdByAdmin"


@dataclass(frozen=True)
class Caller:
    account_id: int
    user_id: int
    account_type: int  # 1 root admin, 2 domain admin, 0 user

    @property
    def is_root_admin(self) -> bool:
        return self.account_type == 1


def storage_motion_supported(session: Session, hypervisor: str, version: str) -> bool:
    """The capability row for exactly this hypervisor type and version (no default fallback)."""
    row = session.scalar(select(HypervisorCapability).where(
        HypervisorCapability.hypervisor_type == hypervisor,
        HypervisorCapability.hypervisor_version == version))
    return bool(row and row.storage_migration_supported)


def pool_facts(session: Session, pool: StoragePool) -> placement.PoolFacts:
    # Read, not taken from the object: the triggers of migration 0008 keep it in the database.
    allocated = session.scalar(select(StoragePool.allocated_bytes).where(StoragePool.id == pool.id)) or 0
    return placement.PoolFacts(name=pool.name, is_local=pool.is_local, scope=pool.scope,
                               state=pool.state, zone_id=pool.zone_id, cluster_id=pool.cluster_id,
                               host_id=pool.host_id, tags=pool.tags,
                               capacity=pool.capacity_bytes, allocated=int(allocated))


# What the checks and the log lines of a volume migration read from the volume, in one statement.
VOLUME_INTAKE_OPTIONS = (joinedload(Volume.vm).joinedload(VirtualMachine.host), joinedload(Volume.pool),
                         joinedload(Volume.disk_offering))
OVERPROVISIONING = "storage.overprovisioning.factor"


@dataclass(frozen=True)
class IntakeFacts:
    """What ``check_migrate_volume`` reads besides the volume and the pool."""

    storage_motion: bool  # the host's hypervisor version supports storage motion
    allocated: int  # bytes of volumes on the destination pool
    overprovisioning: float
    # Ids reserved for the job and its Scheduled event when asked for (``reserve_ids``), so that
    # each row can name the other (the event's ``start_id`` is its own id) without an UPDATE
    # after the INSERTs. A refused request leaves a gap in the sequences; ids need none.
    job_id: int | None = None
    event_id: int | None = None


def _intake_facts_query(ids: str | None = None):
    """The facts in one statement; with ``ids`` ("postgresql" or "sqlite") the two ids as well."""
    supported = (select(HypervisorCapability.storage_migration_supported)
                 .where(HypervisorCapability.hypervisor_type == bindparam("hypervisor"),
                        HypervisorCapability.hypervisor_version == bindparam("version"))
                 .limit(1).scalar_subquery())
    allocated = func.coalesce(select(StoragePool.allocated_bytes).where(StoragePool.id == bindparam("pool_id"))
                              .scalar_subquery(), 0)
    factor = select(Configuration.value).where(Configuration.name == OVERPROVISIONING).scalar_subquery()
    if ids == "postgresql":
        reserved = [literal_column("nextval('async_jobs_id_seq')"), literal_column("nextval('events_id_seq')")]
    elif ids:  # SQLite: the transaction began with BEGIN IMMEDIATE and holds the only write lock
        reserved = [select(func.coalesce(func.max(model.id), 0) + 1).scalar_subquery() for model in (AsyncJob, Event)]
    else:
        reserved = []
    return select(supported, allocated, factor, *reserved)


# Statements built once (building and hashing them per request costs more than running them).
_INTAKE_FACTS = _intake_facts_query()
_INTAKE_FACTS_AND_IDS = {"postgresql": _intake_facts_query("postgresql"), "sqlite": _intake_facts_query("sqlite")}
_LOCK_VM = (update(VirtualMachine.__table__)
            .where(VirtualMachine.__table__.c.id == bindparam("vm_id"),
                   VirtualMachine.__table__.c.state == VmState.RUNNING,
                   VirtualMachine.__table__.c.host_id == bindparam("at_host_id"))
            .values(state=VmState.RUNNING))
_TAKE_VOLUME = (update(Volume.__table__)
                .where(Volume.__table__.c.id == bindparam("volume_id"),
                       Volume.__table__.c.state == VolumeState.READY,
                       Volume.__table__.c.pool_id == bindparam("at_pool_id"))
                .values(state=VolumeState.MIGRATING))
# PostgreSQL: both compare-and-sets in one round trip. The VM's UPDATE runs in a data-modifying
# WITH (which PostgreSQL runs exactly once, whether read or not); the volume's UPDATE only
# matches when the VM's did, so one row counted means both changed, as the two in turn.
# (Its parameters are named apart from the columns of volumes, which the outer UPDATE reserves.)
_LOCKED_VM = (update(VirtualMachine.__table__)
              .where(VirtualMachine.__table__.c.id == bindparam("lock_vm_id"),
                     VirtualMachine.__table__.c.state == VmState.RUNNING,
                     VirtualMachine.__table__.c.host_id == bindparam("lock_host_id"))
              .values(state=VmState.RUNNING).returning(VirtualMachine.__table__.c.id).cte("locked_vm"))
_TAKE_VOLUME_OF_LOCKED_VM = _TAKE_VOLUME.where(exists(select(_LOCKED_VM.c.id)))
_INSERT = {model.__tablename__: insert(model.__table__) for model in (AsyncJob, JobResource, Event)}
_STAMP_PUBLISHED = (update(AsyncJob.__table__)
                    .where(AsyncJob.__table__.c.id == bindparam("job_id"),
                           AsyncJob.__table__.c.published_at.is_(None))
                    .values(published_at=bindparam("now")))


def intake_facts(session: Session, host, dest: StoragePool, reserve_ids: bool = False) -> IntakeFacts:
    """``storage_motion_supported``, ``pool_facts``' allocation and the overprovisioning factor,
    in one statement; with ``reserve_ids``, the new job's and event's ids in the same one."""
    statement = _INTAKE_FACTS
    if reserve_ids:
        dialect = session.get_bind().dialect.name
        statement = _INTAKE_FACTS_AND_IDS["postgresql" if dialect == "postgresql" else "sqlite"]
    # Core statements on the session's connection (its transaction): the ORM's execution layer
    # has nothing to add to them and costs more CPU than the database's answer.
    row = session.connection().execute(statement, {"hypervisor": host.hypervisor,
                                                   "version": host.hypervisor_version, "pool_id": dest.id}).one()
    factor = float(row[2] if row[2] is not None else globalconfig.DEFAULTS[OVERPROVISIONING])
    if reserve_ids:
        return IntakeFacts(bool(row[0]), int(row[1] or 0), factor, int(row[3]), int(row[4]))
    return IntakeFacts(bool(row[0]), int(row[1] or 0), factor)


def check_migrate_volume(session: Session, volume: Volume, dest: StoragePool, livemigrate: bool,
                         facts: IntakeFacts | None = None, reserve_ids: bool = False) -> IntakeFacts:
    """Raise InvalidParameter with the first reason this live volume migration cannot happen;
    the facts it read (with the ids ``reserve_ids`` asks ``intake_facts`` for)."""
    if volume.state != VolumeState.READY:
        raise InvalidParameter(f"Volume {volume.name} must be in Ready state to be migrated; "
                               f"it is {volume.state}")
    vm = volume.vm
    if vm is None or vm.state != VmState.RUNNING or vm.host is None:
        state = "not attached to a virtual machine" if vm is None else f"attached to VM {vm.name} in state {vm.state}"
        raise InvalidParameter(f"Volume {volume.name} is {state}; only live migration of a volume "
                               f"attached to a Running VM is supported")
    host = vm.host
    facts = facts or intake_facts(session, host, dest, reserve_ids)
    if not facts.storage_motion:
        raise InvalidParameter(
            f"Storage motion is not supported on host {host.name}: hypervisor {host.hypervisor} "
            f"version {host.hypervisor_version} has storage_migration_supported = 0")
    if not livemigrate:
        raise InvalidParameter(f"The volume {volume.name} is attached to a vm and for migrating it "
                               f"the parameter livemigrate should be specified")
    if dest.id == volume.pool_id:
        raise InvalidParameter(f"Volume {volume.name} is already on storage pool {dest.name}")
    pool = placement.PoolFacts(name=dest.name, is_local=dest.is_local, scope=dest.scope, state=dest.state,
                               zone_id=dest.zone_id, cluster_id=dest.cluster_id, host_id=dest.host_id,
                               tags=dest.tags, capacity=dest.capacity_bytes, allocated=facts.allocated)
    reasons = placement.volume_pool_refusals(
        src_local=volume.pool.is_local, dest=pool, host_zone_id=host.zone_id,
        host_cluster_id=host.cluster_id, offering_tags=volume.disk_offering.tags,
        offering_name=volume.disk_offering.name, size=volume.size, overprovisioning=facts.overprovisioning)
    logcontext.log_decision("pools", f"volume {volume.name} (migrateVolume)",
                            [{"name": dest.name, "suitable": not reasons, "reasons": reasons}],
                            chosen=None if reasons else dest.name, volume=volume.uuid,
                            vm=vm.name, host=host.name, pool=dest.name, src_pool=volume.pool.name)
    if reasons:
        raise InvalidParameter(f"Cannot migrate volume {volume.name} to storage pool {dest.name}: "
                               + "; ".join(reasons))
    return facts


def migrate_volume(db: Database, enqueue: Callable[[int], None], caller: Caller, volume_id: int,
                   pool_id: int, livemigrate: bool, params: dict) -> str:
    """Accept a live volume migration; returns the job's UUID. Changes nothing if it refuses."""
    with db.uow() as uow:
        volume = uow.session.scalar(select(Volume).options(*VOLUME_INTAKE_OPTIONS).where(Volume.id == volume_id))
        dest = uow.session.get(StoragePool, pool_id)
        return accept_volume_migration(db, uow, enqueue, caller, volume, dest, livemigrate, params)


def accept_volume_migration(db: Database, uow, enqueue: Callable[[int], None], caller: Caller, volume: Volume,
                            dest: StoragePool, livemigrate: bool, params: dict) -> str:
    """Check, record and commit a volume migration in ``uow`` (whose session loaded ``volume`` with
    ``VOLUME_INTAKE_OPTIONS``, and ``dest``), then publish it; the job's UUID. Changes nothing if
    it refuses."""
    s = uow.session
    facts = check_migrate_volume(s, volume, dest, livemigrate, reserve_ids=True)
    job_id, event_id = facts.job_id, facts.event_id
    vm = volume.vm
    # Compare-and-set, as ``db.cas``: lock the VM as Running too, so that a VM migration that
    # starts at the same moment and this volume migration cannot both win; and on the host and
    # pool read above, so that a repair by the truth reconciler in between cannot leave the job
    # a stale source.
    lock = {"vm_id": vm.id, "at_host_id": vm.host_id}
    take = {"volume_id": volume.id, "at_pool_id": volume.pool_id}
    # Core statements in the session's transaction, as in ``intake_facts``. (The API's audit
    # listens to the session's ORM executions and does not see these writes; it needs not: the
    # Scheduled event inserted below is this command's own record.)
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        taken = conn.execute(_TAKE_VOLUME_OF_LOCKED_VM, {"lock_vm_id": vm.id, "lock_host_id": vm.host_id,
                                                      **take}).rowcount == 1
    else:
        taken = conn.execute(_LOCK_VM, lock).rowcount == 1 and conn.execute(_TAKE_VOLUME, take).rowcount == 1
    if not taken:
        raise InvalidParameter(f"Volume {volume.name} must be in Ready state to be migrated; "
                               f"another operation has just taken it")
    job_uuid = new_uuid()
    rows = job_rows(caller, volume, dest, job_id, job_uuid, event_id, params)
    if conn.dialect.name == "postgresql":  # the three in one round trip
        insert_together(conn, rows)
    else:
        for table, values in rows:
            conn.execute(_INSERT[table.name], values)
    uow.after_commit(lambda: publish(db, enqueue, job_id))
    uow.commit()
    log_accepted(job_uuid, volume, dest)
    return job_uuid


def job_rows(caller: Caller, volume, dest, job_id: int, job_uuid: str, event_id: int, params: dict) -> list[tuple]:
    """The job's, its resource's and its Scheduled event's rows: ``(table, values)``."""
    vm = volume.vm
    return [
        (AsyncJob.__table__, {
            "id": job_id, "uuid": job_uuid, "account_id": caller.account_id, "user_id": caller.user_id,
            "command": "migrateVolume", "cmd": MIGRATE_VOLUME_CMD, "params": json.dumps(params),
            "phase": JobPhase.QUEUED, "host_id": vm.host_id, "bytes_total": volume.size,
            "start_event_id": event_id}),
        (JobResource.__table__, {
            "job_id": job_id, "resource_type": "Volume", "resource_id": volume.id, "src_pool_id": volume.pool_id,
            "dest_pool_id": dest.id, "src_host_id": vm.host_id}),
        (Event.__table__, {
            "id": event_id, "type": events.VOLUME_MIGRATE, "state": "Scheduled", "level": "INFO",
            "description": f"Attempting to migrate volume Id: {volume.uuid} to storage pool Id: {dest.uuid}",
            "account_id": caller.account_id, "user_id": caller.user_id, "job_id": job_id, "start_id": event_id}),
    ]


def log_accepted(job_uuid: str, volume, dest) -> None:
    vm = volume.vm
    what = logcontext.fields(job=job_uuid, volume=volume.uuid, vm=vm.name, host=vm.host.name,
                             pool=dest.name, src_pool=volume.pool.name)
    log.info("job %s accepted: migrate volume %s of VM %s from pool %s to pool %s", job_uuid,
             volume.name, what["vm"], what["src_pool"], dest.name, extra=what)


def publish(db: Database, enqueue: Callable[[int], None], job_id: int) -> bool:
    """Send the wake-up for a committed job and stamp it published. False if the broker failed;
    the scheduler publishes such jobs later (the job row is the truth, the message only wakes)."""
    try:
        enqueue(job_id)
    except Exception:  # broker down: leave published_at empty for the scheduler
        log.exception("could not publish job %s; the scheduler will retry", job_id)
        return False
    try:
        if db.engine.dialect.name == "postgresql":
            # A lost stamp costs one duplicate wake-up (see the module's docstring): not worth
            # waiting for a WAL flush on every submission. One round trip: a query string of
            # several statements runs as one implicit transaction, to which SET LOCAL applies.
            # The values are ours (an int and a timestamp), written as literals because such a
            # string cannot carry parameters.
            stamp = (f"SET LOCAL synchronous_commit TO OFF; UPDATE async_jobs SET published_at = "
                     f"'{utcnow().isoformat(sep=' ')}' WHERE id = {int(job_id)} AND published_at IS NULL")
            driver_execute(db.engine, stamp)
        else:
            with db.engine.begin() as conn:
                conn.execute(_STAMP_PUBLISHED, {"job_id": job_id, "now": utcnow()})
    except Exception:  # published all the same: the sweep will only wake it once more
        log.warning("job %s published, but stamping it published failed", job_id, exc_info=True)
    return True


def publish_unpublished(db: Database, enqueue: Callable[[int], None], older_than_s: float = 5.0) -> int:
    """Publish pending jobs that were committed but never published (crash or broker outage)."""
    from datetime import timedelta

    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with db.uow() as uow:
        ids = list(uow.session.scalars(select(AsyncJob.id).where(
            AsyncJob.status == 0, AsyncJob.published_at.is_(None), AsyncJob.created < cutoff)))
    return sum(1 for job_id in ids if publish(db, enqueue, job_id))
