"""What ``migrateVolume``'s intake reads of a volume and its destination pool, as plain rows.

``motion.check_migrate_volume`` and ``motion.accept_volume_migration`` read a few columns of the
volume, its VM, the VM's host, the source pool, the disk offering and the destination pool.
Loaded as ORM objects (five mapped instances through joined eager loads and the identity map)
they cost more CPU than the rest of a submission; here they are one Core statement of just those
columns, handed over as small read-only objects with the models' attribute names. Intake never
writes through them: it changes rows with compare-and-set statements only.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select, true
from sqlalchemy.engine import Connection

from .models import DiskOffering, Host, StoragePool, VirtualMachine, Volume


@dataclass(frozen=True, slots=True)
class HostRow:
    id: int
    name: str
    hypervisor: str
    hypervisor_version: str
    zone_id: int
    cluster_id: int


@dataclass(frozen=True, slots=True)
class VmRow:
    id: int
    name: str
    state: str
    host_id: int | None
    host: HostRow | None


@dataclass(frozen=True, slots=True)
class SourcePoolRow:
    name: str
    is_local: bool


@dataclass(frozen=True, slots=True)
class OfferingRow:
    name: str
    tags: str


@dataclass(frozen=True, slots=True)
class VolumeRow:
    id: int
    uuid: str
    name: str
    state: str
    size: int
    pool_id: int
    vm: VmRow | None
    pool: SourcePoolRow
    disk_offering: OfferingRow


@dataclass(frozen=True, slots=True)
class PoolRow:
    id: int
    uuid: str
    name: str
    is_local: bool
    scope: str
    state: str
    zone_id: int
    cluster_id: int | None
    host_id: int | None
    tags: str
    capacity_bytes: int


_VOLUME = ("id", "uuid", "name", "state", "size", "pool_id")
_VM = ("id", "name", "state", "host_id")
_HOST = ("id", "name", "hypervisor", "hypervisor_version", "zone_id", "cluster_id")
_POOL = ("id", "uuid", "name", "is_local", "scope", "state", "zone_id", "cluster_id", "host_id", "tags",
         "capacity_bytes")


VOLUME_TABLE, HOST_TABLE = Volume.__table__, Host.__table__
SOURCE_TABLE, DEST_TABLE = StoragePool.__table__.alias("src"), StoragePool.__table__.alias("dest")


def _statement():
    volume, vm, host = VOLUME_TABLE, VirtualMachine.__table__, HOST_TABLE
    offering, src, dest = DiskOffering.__table__, SOURCE_TABLE, DEST_TABLE
    columns = ([volume.c[n] for n in _VOLUME] + [vm.c[n] for n in _VM] + [host.c[n] for n in _HOST]
               + [src.c.name, src.c.is_local, offering.c.name, offering.c.tags] + [dest.c[n] for n in _POOL])
    joined = (volume.outerjoin(vm, vm.c.id == volume.c.vm_id).outerjoin(host, host.c.id == vm.c.host_id)
              .join(src, src.c.id == volume.c.pool_id).join(offering, offering.c.id == volume.c.disk_offering_id)
              .join(dest, true()))
    # Each row's columns are read by position: labels would have to be unique, positions need not.
    return (select(*columns).select_from(joined)
            .where(volume.c.uuid == bindparam("volume"), dest.c.uuid == bindparam("pool")))


VOLUME_AND_POOL = _statement()
_WIDTH = len(_VOLUME) + len(_VM) + len(_HOST) + 4 + len(_POOL)


def volume_and_pool(conn: Connection, volume_uuid: str, pool_uuid: str) -> tuple[VolumeRow, PoolRow] | None:
    """The volume with UUID ``volume_uuid`` and the pool with UUID ``pool_uuid`` (both as stored),
    or None when either is missing."""
    row = conn.execute(VOLUME_AND_POOL, {"volume": volume_uuid, "pool": pool_uuid}).first()
    return None if row is None else from_row(row)


def from_row(row) -> tuple[VolumeRow, PoolRow]:
    """The volume and the pool from the first columns of a row of ``VOLUME_AND_POOL`` (or of a
    statement that adds columns after them)."""
    at = len(_VOLUME)
    v = row[:at]
    vm_cols, at = row[at:at + len(_VM)], at + len(_VM)
    host_cols, at = row[at:at + len(_HOST)], at + len(_HOST)
    src_name, src_local, offering_name, offering_tags = row[at:at + 4]
    pool_cols = row[at + 4:_WIDTH]
    host = HostRow(*host_cols) if host_cols[0] is not None else None
    vm = VmRow(*vm_cols, host) if vm_cols[0] is not None else None
    volume = VolumeRow(*v, vm, SourcePoolRow(src_name, src_local), OfferingRow(offering_name, offering_tags))
    return volume, PoolRow(*pool_cols)
