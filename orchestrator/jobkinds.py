"""What each kind of migration job sends to the agent and how it lands in the database.

A Plan is loaded from the job's resource rows (``load_job``: one statement for the job, its rows,
their volumes with VM and host, their pools and the global values admission reads), and carries
what the runner needs later without going back to the database: the hosts and pools whose slots
it takes, the deadline, the job's owner for events and the log fields. ``apply_success`` and
``apply_failure`` run inside the runner's finishing transaction and move every object with
compare-and-set, so applying an outcome twice fails the second time instead of doing it twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session, aliased, joinedload

from . import events, globalconfig, logcontext, responses
from .config import Settings
from .db import cas, fast_execute
from .models import (Account, AsyncJob, DiskOffering, Host, JobResource, ServiceOffering, StoragePool,
                     VirtualMachine, Volume, Zone)
from .states import VmState, VolumeState


def pool_to(pool: StoragePool) -> dict:
    """CloudStack's StorageFilerTO for a pool, as the agent expects it."""
    return {"uuid": pool.uuid, "path": pool.path, "type": pool.pool_type, "host": "127.0.0.1", "port": 0}


@dataclass
class VolumeMove:
    volume_id: int
    name: str
    uuid: str
    src_pool_id: int
    dest_pool_id: int
    path: str


@dataclass
class Plan:
    job_id: int
    job_uuid: str
    phase: str
    event_type: str
    label: str  # "volume X" / "VM Y", for texts
    host_name: str  # the host whose agent runs the command
    agent_url: str
    command: dict
    moves: list[VolumeMove] = field(default_factory=list)
    vm_id: int | None = None
    src_host_id: int | None = None
    dest_host_id: int | None = None
    source_pool_uuids: dict[int, str] = field(default_factory=dict)  # moving volume id -> pool uuid
    host_ids: list[int] = field(default_factory=list)  # hosts whose slots the job takes
    pool_ids: list[int] = field(default_factory=list)  # pools it moves volumes out of or into
    wait: int = 1800  # the global ``wait`` when loaded; the agent deadline is twice this
    deadline_at: datetime | None = None
    owner: SimpleNamespace | None = None  # id, account, user, start event: what events.record needs
    log_fields: dict = field(default_factory=dict)

    def apply_success(self, s: Session, record: dict) -> dict:
        paths = {v.get("id"): v.get("path") for v in (record.get("result") or {}).get("volumeTos", [])}
        single = (record.get("result") or {}).get("volumePath")
        for move in self.moves:
            cas(s, Volume, move.volume_id, {"state": VolumeState.MIGRATING, "pool_id": move.src_pool_id},
                {"state": VolumeState.READY, "pool_id": move.dest_pool_id, "last_pool_id": move.src_pool_id,
                 "path": paths.get(move.uuid) or single or move.path}, what=f"volume {move.name}")
        if self.vm_id is None:
            return {"volume": volume_response(s, self.moves[0].volume_id)}
        cas(s, VirtualMachine, self.vm_id, {"state": VmState.MIGRATING, "host_id": self.src_host_id},
            {"state": VmState.RUNNING, "host_id": self.dest_host_id, "last_host_id": self.src_host_id},
            what=self.label)
        vm = s.get(VirtualMachine, self.vm_id)
        s.refresh(vm)
        return {"virtualmachine": responses.virtual_machine(vm)}

    def apply_failure(self, s: Session) -> None:
        for move in self.moves:
            cas(s, Volume, move.volume_id, {"state": VolumeState.MIGRATING, "pool_id": move.src_pool_id},
                {"state": VolumeState.READY}, what=f"volume {move.name}")
        if self.vm_id is not None:
            cas(s, VirtualMachine, self.vm_id, {"state": VmState.MIGRATING, "host_id": self.src_host_id},
                {"state": VmState.RUNNING}, what=self.label)


@lru_cache(maxsize=None)
def _volume_response_statement():
    """One statement (built once) for the columns a volume's response names: a narrow row, not
    seven ORM objects (building those cost more than the rest of the finishing transaction)."""
    v, vm = Volume, VirtualMachine
    return (select(v.uuid, v.name, v.volume_type, v.device_id, v.size, v.created, v.state, v.path,
                   Zone.uuid.label("zone_uuid"), Zone.name.label("zone_name"),
                   StoragePool.uuid.label("pool_uuid"), StoragePool.name.label("pool_name"), StoragePool.is_local,
                   DiskOffering.uuid.label("offering_uuid"), DiskOffering.name.label("offering_name"),
                   DiskOffering.display_text.label("offering_text"), Account.name.label("account_name"),
                   vm.uuid.label("vm_uuid"), vm.name.label("vm_name"), vm.display_name.label("vm_display_name"),
                   vm.state.label("vm_state"), ServiceOffering.uuid.label("so_uuid"),
                   ServiceOffering.name.label("so_name"))
            .join(Zone, Zone.id == v.zone_id).join(StoragePool, StoragePool.id == v.pool_id)
            .join(DiskOffering, DiskOffering.id == v.disk_offering_id).join(Account, Account.id == v.account_id)
            .outerjoin(vm, vm.id == v.vm_id).outerjoin(ServiceOffering, ServiceOffering.id == vm.service_offering_id)
            .where(v.id == bindparam("volume_id")))


def volume_response(s: Session, volume_id: int) -> dict:
    """``responses.volume`` of one volume, read in one narrow statement."""
    r = fast_execute(s, _volume_response_statement(), {"volume_id": volume_id}).one()
    vm = None if r.vm_uuid is None else SimpleNamespace(
        uuid=r.vm_uuid, name=r.vm_name, display_name=r.vm_display_name, state=r.vm_state,
        service_offering=SimpleNamespace(uuid=r.so_uuid, name=r.so_name))
    return responses.volume(SimpleNamespace(
        uuid=r.uuid, name=r.name, volume_type=r.volume_type, device_id=r.device_id, size=r.size,
        created=r.created, state=r.state, path=r.path, vm=vm,
        zone=SimpleNamespace(uuid=r.zone_uuid, name=r.zone_name),
        pool=SimpleNamespace(uuid=r.pool_uuid, name=r.pool_name, is_local=r.is_local),
        disk_offering=SimpleNamespace(uuid=r.offering_uuid, name=r.offering_name, display_text=r.offering_text),
        account=SimpleNamespace(name=r.account_name)))


def _agent_url(settings: Settings, host: Host) -> str:
    return settings.agent_url_for(host.name, host.agent_url)


CONFIG = ("wait", "pool.storage.migration.limit")  # the global values a job's first transaction reads


@dataclass
class Loaded:
    """What ``load_job`` read besides the job: plain objects with the columns a plan needs."""

    rows: list[SimpleNamespace]
    volumes: dict[int, SimpleNamespace]
    pools: dict[int, SimpleNamespace]


JOB_COLUMNS = ("id", "uuid", "status", "phase", "lease_owner", "lease_expires_at", "deadline_at", "account_id",
               "user_id", "start_event_id", "host_id", "dest_host_id")
ROW_COLUMNS = ("resource_type", "resource_id", "src_pool_id", "dest_pool_id", "src_host_id", "dest_host_id")
POOL_COLUMNS = ("id", "uuid", "path", "pool_type", "name")


@lru_cache(maxsize=None)
def _load_job_statement():
    """Built once: building it (aliases, joins) costs more than running it. Named columns, not ORM
    objects: a plan needs a few columns of each of seven rows, and mapping whole objects was
    the largest part of a job's first transaction."""
    src, dest = aliased(StoragePool), aliased(StoragePool)
    return (select(*[getattr(AsyncJob, c) for c in JOB_COLUMNS], JobResource.id.label("r_id"),
                   *[getattr(JobResource, c) for c in ROW_COLUMNS],
                   Volume.id.label("v_id"), Volume.name.label("v_name"), Volume.uuid.label("v_uuid"),
                   Volume.path.label("v_path"), VirtualMachine.name.label("vm_name"),
                   VirtualMachine.instance_name.label("vm_instance_name"), Host.name.label("host_name"),
                   Host.agent_url.label("host_agent_url"),
                   *[getattr(src, c).label(f"src_{c}") for c in POOL_COLUMNS],
                   *[getattr(dest, c).label(f"dest_{c}") for c in POOL_COLUMNS],
                   *[globalconfig.column(n) for n in CONFIG])
            .outerjoin(JobResource, JobResource.job_id == AsyncJob.id)
            .outerjoin(Volume, and_(JobResource.resource_type == "Volume", Volume.id == JobResource.resource_id))
            .outerjoin(VirtualMachine, VirtualMachine.id == Volume.vm_id)
            .outerjoin(Host, Host.id == VirtualMachine.host_id)
            .outerjoin(src, src.id == JobResource.src_pool_id).outerjoin(dest, dest.id == JobResource.dest_pool_id)
            .where(AsyncJob.id == bindparam("job_id")).order_by(JobResource.id))


def load_job(s: Session, job_id: int) -> tuple[SimpleNamespace | None, Loaded | None]:
    """The job (the columns of ``JOB_COLUMNS``) and its resource rows in one statement, with the
    volumes those rows name (their VM and its host), their source and destination pools, and
    the values of ``CONFIG`` (remembered for this unit of work): ``load_plan(s, job, settings,
    loaded)`` then needs no statement of its own for a volume job."""
    found = fast_execute(s, _load_job_statement(), {"job_id": job_id}).all()
    if not found:
        return None, None
    first = found[0]
    for name, value in zip(CONFIG, first[-len(CONFIG):]):
        globalconfig.remember(s, name, value)
    job = SimpleNamespace(**{c: getattr(first, c) for c in JOB_COLUMNS})
    rows, volumes, pools = [], {}, {}
    for r in found:
        if r.r_id is None:
            continue
        rows.append(SimpleNamespace(id=r.r_id, job_id=job_id, **{c: getattr(r, c) for c in ROW_COLUMNS}))
        if r.v_id is not None:
            vm = None if r.vm_name is None else SimpleNamespace(
                name=r.vm_name, instance_name=r.vm_instance_name,
                host=None if r.host_name is None else SimpleNamespace(name=r.host_name, agent_url=r.host_agent_url))
            volumes[r.v_id] = SimpleNamespace(id=r.v_id, name=r.v_name, uuid=r.v_uuid, path=r.v_path, vm=vm)
        for side in ("src", "dest"):
            if getattr(r, f"{side}_id") is not None:
                pools[getattr(r, f"{side}_id")] = SimpleNamespace(**{c: getattr(r, f"{side}_{c}") for c in POOL_COLUMNS})
    return job, Loaded(rows, volumes, pools)


def load_plan(s: Session, job, settings: Settings, loaded: Loaded | None = None) -> Plan | None:
    """The job's plan (``job``: an AsyncJob, or what ``load_job`` read, then with ``loaded``);
    from what ``load_job`` read when given, else read here."""
    rows = loaded.rows if loaded is not None else list(
        s.scalars(select(JobResource).where(JobResource.job_id == job.id).order_by(JobResource.id)))
    vm_row = next((r for r in rows if r.resource_type == "VirtualMachine"), None)
    volume_rows = [r for r in rows if r.resource_type == "Volume"]
    pool_ids = sorted({p for r in volume_rows for p in (r.src_pool_id, r.dest_pool_id) if p is not None})
    if loaded is not None:
        volumes, pools = loaded.volumes, loaded.pools
    else:  # bulk loads: later s.get() calls find these in the identity map without a statement
        chosen = select(Volume).where(Volume.id.in_([r.resource_id for r in volume_rows]))
        volumes = {v.id: v for v in s.scalars(chosen.options(joinedload(Volume.vm).joinedload(VirtualMachine.host)))
                   } if volume_rows else {}
        pools = {p.id: p for p in s.scalars(select(StoragePool).where(StoragePool.id.in_(pool_ids)))} if pool_ids else {}
    moves, sources = [], {}
    for r in volume_rows:
        v = volumes[r.resource_id]
        moves.append(VolumeMove(v.id, v.name, v.uuid, r.src_pool_id, r.dest_pool_id, v.path))
        sources[v.id] = pools[r.src_pool_id].uuid
    wait = globalconfig.wait_seconds(s)
    common = dict(pool_ids=pool_ids, wait=wait, deadline_at=job.deadline_at,
                  owner=SimpleNamespace(id=job.id, account_id=job.account_id, user_id=job.user_id,
                                        start_event_id=job.start_event_id))
    if vm_row is None:
        if not moves:
            return None
        move = moves[0]
        volume = volumes[move.volume_id]
        host = volume.vm.host
        src_pool, dest_pool = pools[move.src_pool_id], pools[move.dest_pool_id]
        command = {"id": job.uuid, "type": "MigrateVolumeCommand", "volumeId": volume.uuid,
                   "volumePath": volume.path, "srcPool": pool_to(src_pool), "pool": pool_to(dest_pool),
                   "attachedVmName": volume.vm.instance_name, "wait": wait}
        fields = logcontext.fields(job=job.uuid, volume=[volume.uuid], vm=[volume.vm.name], host=host.name,
                                   pool=[dest_pool.name], src_pool=[src_pool.name])
        return Plan(job.id, job.uuid, job.phase, events.VOLUME_MIGRATE, f"volume {volume.name}",
                    host.name, _agent_url(settings, host), command, moves, source_pool_uuids=sources,
                    host_ids=sorted({h for h in (job.host_id, job.dest_host_id) if h is not None}),
                    log_fields=fields, **common)
    vm = s.get(VirtualMachine, vm_row.resource_id)
    src, dest = s.get(Host, vm_row.src_host_id), s.get(Host, vm_row.dest_host_id)
    moving = {m.volume_id: m for m in moves}
    pairs = []
    for volume in s.scalars(select(Volume).where(Volume.vm_id == vm.id).order_by(Volume.device_id, Volume.id)):
        move = moving.get(volume.id)
        src_pool = s.get(StoragePool, move.src_pool_id if move else volume.pool_id)
        dest_pool = s.get(StoragePool, move.dest_pool_id) if move else src_pool
        pairs.append({"volume": {"id": volume.uuid, "path": volume.path, "pool": pool_to(src_pool)},
                      "pool": pool_to(dest_pool)})
    command = {"id": job.uuid, "type": "MigrateWithStorageCommand",
               "vm": {"name": vm.instance_name, "uuid": vm.uuid}, "tgtHost": dest.name,
               "tgtAgentUrl": _agent_url(settings, dest), "volumeToPool": pairs, "wait": wait}
    hosts = {h.id: h.name for h in (s.get(Host, job.host_id) if job.host_id else None,
                                    s.get(Host, job.dest_host_id) if job.dest_host_id else None) if h}
    names = [hosts[h] for h in (job.host_id, job.dest_host_id) if h in hosts]
    fields = logcontext.fields(job=job.uuid, volume=[volumes[m.volume_id].uuid for m in moves], vm=[vm.name],
                               host=names[0] if names else None, dest_host=names[1] if len(names) > 1 else None,
                               pool=list(dict.fromkeys(pools[m.dest_pool_id].name for m in moves)),
                               src_pool=list(dict.fromkeys(pools[m.src_pool_id].name for m in moves)))
    return Plan(job.id, job.uuid, job.phase, events.VM_MIGRATE, f"VM {vm.name}", src.name,
                _agent_url(settings, src), command, moves, vm.id, src.id, dest.id, sources,
                host_ids=sorted(hosts), log_fields=fields, **common)
