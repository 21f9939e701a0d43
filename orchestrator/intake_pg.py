"""``migrateVolume``'s intake on PostgreSQL in two statements, neither in an explicit transaction.

1. One read: the volume with what the checks need of its VM, host, source pool and disk offering,
   the destination pool, the host's storage-motion capability, the overprovisioning factor, and
   the job's and event's ids (``nextval``). The checks (``motion.check_migrate_volume``) then run
   on these plain rows.
2. One write, atomic as any single statement: the VM's compare-and-set (still Running on the host
   read), the volume's (still Ready on the pool read, and only if the VM's matched), and the job,
   its resource and its Scheduled event inserted only if the volume's matched. It returns a row
   when the job was recorded, none when another writer got there first; either way it commits by
   itself, durably (``synchronous_commit`` as configured), before the job's id is published.
   A write that PostgreSQL picks as a deadlock's victim changed nothing and runs once more.

This is what ``motion.accept_volume_migration`` does in a transaction of its own (BEGIN, four
statements, COMMIT), with the same guarantees: nothing read is locked in either version, and the
compare-and-set conditions carry what must not have changed. Five fewer round trips, and the
statements skip SQLAlchemy's execution layers (``db.driver_execute``). SQLite, and requests whose
ids are not both lower-case UUIDs (the one-by-one lookups word the error), keep the transaction.
"""
from __future__ import annotations

import logging

from psycopg.errors import DeadlockDetected
from sqlalchemy import exists, literal_column, select

from . import globalconfig, intake_rows
from .db import Database, driver_execute, plain_sql, with_defaults
from .errors import InvalidParameter
from .models import AsyncJob, Configuration, Event, HypervisorCapability, JobResource, new_uuid
from .motion import OVERPROVISIONING, Caller, IntakeFacts, check_migrate_volume, job_rows, log_accepted, publish
from .states import VmState, VolumeState

log = logging.getLogger(__name__)


def _read_statement():
    host = intake_rows.HOST_TABLE
    supported = exists().where(HypervisorCapability.hypervisor_type == host.c.hypervisor,
                               HypervisorCapability.hypervisor_version == host.c.hypervisor_version,
                               HypervisorCapability.storage_migration_supported.is_(True))
    # The name as a literal: ``driver_execute`` binds only what the request passes.
    factor = (select(Configuration.value).where(Configuration.name == literal_column(f"'{OVERPROVISIONING}'"))
              .scalar_subquery())
    dest = intake_rows.DEST_TABLE
    return intake_rows.VOLUME_AND_POOL.add_columns(
        supported, dest.c.allocated_bytes, factor,
        literal_column("nextval('async_jobs_id_seq')"), literal_column("nextval('events_id_seq')"))


# Only the rows' shape is fixed: the values are bound at each request.
_SHAPE = (AsyncJob.__table__, JobResource.__table__, Event.__table__)


def _write_sql(names: tuple[tuple[str, ...], ...], dialect) -> str:
    """The compare-and-sets and the three INSERTs in one statement; each INSERT selects its bound
    values from the volume's UPDATE ... RETURNING, so no row taken means nothing inserted. Written
    out here: SQLAlchemy cannot render an INSERT ... SELECT inside a CTE. The parameters are cast
    to their columns' types (a NULL would otherwise be text)."""
    quote = dialect.identifier_preparer.quote
    parts = [
        f"locked_vm AS (UPDATE virtual_machines SET state = '{VmState.RUNNING}' WHERE id = %(lock_vm_id)s "
        f"AND state = '{VmState.RUNNING}' AND host_id = %(lock_host_id)s RETURNING id)",
        f"taken AS (UPDATE volumes SET state = '{VolumeState.MIGRATING}' WHERE id = %(volume_id)s "
        f"AND state = '{VolumeState.READY}' AND pool_id = %(at_pool_id)s AND EXISTS (SELECT 1 FROM locked_vm) "
        f"RETURNING id)",
    ]
    for n, (table, columns) in enumerate(zip(_SHAPE, names)):
        values = ", ".join(f"%({table.name}__{c})s::{table.c[c].type.compile(dialect=dialect)}" for c in columns)
        parts.append(f"insert_{n} AS (INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
                     f"SELECT {values} FROM taken RETURNING id)")
    return "WITH " + ",\n".join(parts) + f"\nSELECT id FROM insert_{len(names) - 1}"


_READ = _read_statement()
_WRITES: dict = {}


def submit(db: Database, enqueue, caller: Caller, volume_uuid: str, pool_uuid: str, livemigrate: bool,
           params: dict) -> str | None:
    """Accept a live volume migration as described above; the job's UUID, or None when the
    volume or the pool is not found (the caller looks them up one by one to say which). Raises
    InvalidParameter, having changed nothing, when it refuses."""
    dialect = db.engine.dialect
    found = driver_execute(db.engine, plain_sql(_READ, dialect), {"volume": volume_uuid, "pool": pool_uuid})
    if not found:
        return None
    row = found[0]
    volume, dest = intake_rows.from_row(row)
    supported, allocated, factor, job_id, event_id = row[-5:]
    factor = float(factor if factor is not None else globalconfig.DEFAULTS[OVERPROVISIONING])
    facts = IntakeFacts(bool(supported), int(allocated or 0), factor, int(job_id), int(event_id))
    check_migrate_volume(None, volume, dest, livemigrate, facts=facts)
    vm = volume.vm
    job_uuid = new_uuid()
    rows = job_rows(caller, volume, dest, facts.job_id, job_uuid, facts.event_id, params)
    values, names = {}, []
    for table, row_values in rows:
        complete = with_defaults(table, row_values)
        names.append(tuple(sorted(complete)))
        values.update({f"{table.name}__{name}": value for name, value in complete.items()})
    key = tuple(names)
    if key not in _WRITES:
        _WRITES[key] = _write_sql(key, dialect)
    values.update({"lock_vm_id": vm.id, "lock_host_id": vm.host_id, "volume_id": volume.id,
                   "at_pool_id": volume.pool_id})
    try:
        recorded = driver_execute(db.engine, _WRITES[key], values)
    except DeadlockDetected:  # PostgreSQL chose this statement, which changed nothing: once more
        log.info("intake of volume %s lost a deadlock; writing again", volume.name)
        recorded = driver_execute(db.engine, _WRITES[key], values)
    if not recorded:
        raise InvalidParameter(f"Volume {volume.name} must be in Ready state to be migrated; "
                               f"another operation has just taken it")
    publish(db, enqueue, facts.job_id)
    log_accepted(job_uuid, volume, dest)
    return job_uuid
