"""The reconciler against the agents' truth, for volumes and VMs at rest.

``reconcile.repair_orphans`` repairs objects left in ``Migrating``. This module covers the other
half: a ``Ready`` volume whose complete data the agent finds on another pool than the recorded
one (a file moved behind the database's back, a restore, a hand edit), and a ``Running`` VM that
its recorded host's agent does not run while exactly one other host's agent does. It asks the
agents and records their truth, with a ``VOLUME.RECONCILE`` / ``VM.RECONCILE`` event per repair.

Rules (the verdicts are plain functions in ``truth_rules``):

- Only objects that no job owns now or owned recently are looked at: a pending job, or one that
  ended less than ``RECENT_JOB_S`` before the run began, owns its objects' truth (the finish or
  rollback is the repair). A VM counts as owned when one of its volumes is, and the reverse.
- Never from an ambiguous or silent agent: an unreachable agent (its host's remaining objects are
  skipped this run), an agent that does not know the volume, no complete copy anywhere, several
  copies none on the recorded pool, a copy of the wrong size or on an offline pool, a VM on no
  other host or on several: each is skipped and logged, nothing changes.
- Never against a live job: the agent is asked outside any transaction (DESIGN §8.3), asked a
  second time just before the repair, and the repair is one compare-and-set that also requires
  the object to be still at rest where it was read and still not owned by any job (as above).
- Cheap enough for the sweep: one run every ``reconcile.truth.interval`` seconds (global
  configuration, default 300; 0 turns it off), at most ``reconcile.truth.batch`` volumes and as
  many VMs per run, continuing from where the previous run stopped; the calls are grouped per
  host, one HTTP call per object (the agent protocol has no bulk listing), and a host whose agent
  does not answer costs one call per run; looking for VMs missing from their host costs at most
  ``SEARCH_CALLS`` calls per run. The schedule is kept per process (the beat is single).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import selectinload

from . import events, globalconfig
from .config import Settings
from .db import Database
from .errors import AgentProtocolError, AgentUnreachable
from .models import AsyncJob, Host, JobResource, StoragePool, VirtualMachine, Volume, utcnow
from .provision import agent_host_for
from .states import JobStatus, VmState, VolumeState
from .truth_rules import OK, Verdict, vm_verdict, volume_verdict  # noqa: F401  (OK, Verdict: API)

log = logging.getLogger(__name__)

# A job that ended this recently (seconds) still counts as owning its objects: its finish may be
# newer than the agent's answer, and clocks of different machines differ a little.
RECENT_JOB_S = 60.0
# Agent calls one run may spend looking for VMs that their recorded host does not run (each such
# VM costs one call per other host of its zone); the rest wait for the next run.
SEARCH_CALLS = 200


class TruthPort(Protocol):
    """What this module asks of a host agent (``workers.agent_client.AgentClient``): ``None`` for
    404, ``AgentUnreachable`` when it does not answer."""

    def get_volume(self, base_url: str, volume_id: str) -> dict | None: ...
    def get_vm(self, base_url: str, name: str) -> dict | None: ...


# -- snapshots of what the database says --------------------------------------------------------

@dataclass(frozen=True)
class VolumeRow:
    id: int
    uuid: str
    name: str
    size: int
    vm_id: int | None
    account_id: int
    pool_id: int
    pool_uuid: str
    pool_name: str
    host_name: str | None
    base_url: str | None


@dataclass(frozen=True)
class VmRow:
    id: int
    name: str
    instance_name: str
    account_id: int
    host_id: int
    host_name: str


@dataclass
class Outcome:
    """What one run did: how many objects it checked, the repairs' texts, the skips' reasons."""

    volumes_checked: int = 0
    vms_checked: int = 0
    repairs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _owners(resource_type: str, since: datetime):
    """Ids of the objects of ``resource_type`` a job owns now or ended with after ``since``."""
    return (select(JobResource.resource_id).join(AsyncJob, AsyncJob.id == JobResource.job_id)
            .where(JobResource.resource_type == resource_type,
                   or_(AsyncJob.status == JobStatus.PENDING, AsyncJob.completed_at.is_(None),
                       AsyncJob.completed_at >= since)))


def _owned(resource_type: str, resource_id, since: datetime):
    return _owners(resource_type, since).where(JobResource.resource_id == resource_id).exists()


def _vm_owned(vm_id, since: datetime):
    """The VM, or one of its volumes, is owned by a job (a volume migration locks its VM)."""
    return or_(_owned("VirtualMachine", vm_id, since),
               select(Volume.id).where(Volume.vm_id == vm_id,
                                       Volume.id.in_(_owners("Volume", since))).exists())


def _snapshot(db: Database, settings: Settings, since: datetime, batch: int,
              after: tuple[int, int]) -> tuple[list[VolumeRow], list[VmRow], dict[int, Host]]:
    with db.uow() as uow:
        s = uow.session
        volumes = []
        for v in s.scalars(select(Volume).options(
                selectinload(Volume.pool), selectinload(Volume.vm).selectinload(VirtualMachine.host))
                .where(Volume.state == VolumeState.READY, Volume.id > after[0],
                       Volume.id.not_in(_owners("Volume", since)),
                       or_(Volume.vm_id.is_(None), Volume.vm_id.not_in(_owners("VirtualMachine", since))))
                .order_by(Volume.id).limit(batch)):
            host = agent_host_for(s, v)
            volumes.append(VolumeRow(v.id, v.uuid, v.name, v.size, v.vm_id, v.account_id, v.pool_id,
                                     v.pool.uuid, v.pool.name, host.name if host else None,
                                     settings.agent_url_for(host.name, host.agent_url) if host else None))
        vms = [VmRow(vm.id, vm.name, vm.instance_name, vm.account_id, vm.host_id, vm.host.name)
               for vm in s.scalars(select(VirtualMachine).options(selectinload(VirtualMachine.host))
                                   .where(VirtualMachine.state == VmState.RUNNING,
                                          VirtualMachine.host_id.is_not(None), VirtualMachine.id > after[1],
                                          ~_vm_owned(VirtualMachine.id, since))
                                   .order_by(VirtualMachine.id).limit(batch))]
        hosts = {h.id: h for h in s.scalars(select(Host))}
        for h in hosts.values():
            s.expunge(h)
    return volumes, vms, hosts


# -- the run -----------------------------------------------------------------------------------

_last_run: dict[str, float] = {}
_cursor: dict[str, tuple[int, int]] = {}


def reconcile_if_due(db: Database, agent: TruthPort, settings: Settings,
                     clock=time.monotonic) -> list[str]:
    """The sweep's hook: run ``reconcile_truth`` when ``reconcile.truth.interval`` seconds have
    passed since this process last did (at once in a fresh process). Never raises."""
    try:
        with db.uow() as uow:
            interval = globalconfig.truth_interval_seconds(uow.session)
            batch = globalconfig.truth_batch(uow.session)
        now = clock()
        last = _last_run.get(db.url)
        if interval <= 0 or (last is not None and now - last < interval):
            return []
        _last_run[db.url] = now
        return reconcile_truth(db, agent, settings, batch=batch).repairs
    except Exception:  # a database outage or a bug here must not stop the rest of the sweep
        log.exception("truth reconciler: the run failed; the next one retries")
        return []


def reconcile_truth(db: Database, agent: TruthPort, settings: Settings, batch: int = 500) -> Outcome:
    """Check up to ``batch`` Ready volumes and ``batch`` Running VMs against their agents and
    repair the database where the agent's truth is unambiguous (see the module docstring)."""
    since = utcnow() - timedelta(seconds=RECENT_JOB_S)
    after = _cursor.get(db.url, (0, 0))
    volumes, vms, hosts = _snapshot(db, settings, since, batch, after)
    # Next run continues after the last object seen; a short batch means the end: start over.
    _cursor[db.url] = (volumes[-1].id if len(volumes) == batch else 0,
                       vms[-1].id if len(vms) == batch else 0)
    out = Outcome(volumes_checked=len(volumes), vms_checked=len(vms))
    _check_vms(db, agent, settings, vms, hosts, since, out)
    _check_volumes(db, agent, volumes, since, out)
    for text in out.repairs:
        log.warning("truth reconciler: %s", text)
    log.info("truth reconciler: checked %d volume(s) and %d VM(s): %d repaired, %d skipped",
             out.volumes_checked, out.vms_checked, len(out.repairs), len(out.skipped))
    return out


class _Asker:
    """Agent calls of one run: a host that does not answer once is not asked again."""

    def __init__(self, agent: TruthPort):
        self.agent = agent
        self.silent: set[str] = set()

    def ask(self, host_name: str, call, *args):
        """``(answered, answer)``."""
        if host_name in self.silent:
            return False, None
        try:
            return True, call(*args)
        except (AgentUnreachable, AgentProtocolError) as exc:  # no answer, or one we cannot read
            self.silent.add(host_name)
            log.warning("truth reconciler: the agent of host %s does not answer (%s); its objects "
                        "are skipped this run", host_name, exc, extra={"host": host_name})
            return False, None


def _skip(out: Outcome, what: str, why: str, **fields) -> None:
    out.skipped.append(f"{what}: {why}")
    log.info("truth reconciler: %s left alone: %s", what, why, extra=fields)


def _check_vms(db, agent, settings, vms: list[VmRow], hosts: dict[int, Host], since, out) -> None:
    asker = _Asker(agent)
    base = {h.id: settings.agent_url_for(h.name, h.agent_url) for h in hosts.values()}

    def runs(host: Host, vm: VmRow) -> bool | None:
        answered, answer = asker.ask(host.name, agent.get_vm, base[host.id], vm.instance_name)
        if not answered:
            return None
        # The agent names the host it runs the VM on; anything else is not a yes.
        return bool(answer) and answer.get("host", host.name) == host.name

    budget = [SEARCH_CALLS]  # agent calls left this run for VMs missing from their host
    by_host: dict[int, list[VmRow]] = defaultdict(list)
    for vm in vms:
        by_host[vm.host_id].append(vm)
    for host_id, group in by_host.items():
        recorded = hosts[host_id]
        for vm in group:
            answers = {recorded.name: runs(recorded, vm)}
            others = [h for h in hosts.values() if h.id != recorded.id and h.zone_id == recorded.zone_id]
            if answers[recorded.name] is False and len(others) > budget[0]:
                _skip(out, f"VM {vm.name}", "not on its recorded host; this run's search budget is "
                      "spent, the next run looks", vm=vm.name, host=recorded.name)
                continue
            if answers[recorded.name] is False:  # look for it on the other hosts of its zone
                budget[0] -= len(others)
                for other in others:
                    answers[other.name] = runs(other, vm)
            verdict = vm_verdict(recorded.name, answers)
            if verdict.action == "skip":
                _skip(out, f"VM {vm.name}", verdict.why, vm=vm.name, host=recorded.name)
            elif verdict.action == "repair":
                target = next(h for h in hosts.values() if h.name == verdict.target)
                if runs(target, vm) and runs(recorded, vm) is False:  # ask again, just before
                    _repair_vm(db, vm, recorded, target, since, out)
                else:
                    _skip(out, f"VM {vm.name}", "the agents' answers changed", vm=vm.name)


def _repair_vm(db: Database, vm: VmRow, recorded: Host, target: Host, since, out) -> None:
    with db.uow() as uow:
        s = uow.session
        result = s.execute(update(VirtualMachine).where(
            VirtualMachine.id == vm.id, VirtualMachine.state == VmState.RUNNING,
            VirtualMachine.host_id == vm.host_id, ~_vm_owned(vm.id, since))
            .values(host_id=target.id, last_host_id=vm.host_id).execution_options(synchronize_session=False))
        if result.rowcount != 1:
            _skip(out, f"VM {vm.name}", "changed in the database meanwhile", vm=vm.name)
            return
        text = (f"VM {vm.name} was recorded Running on host {recorded.name}, whose agent does not run "
                f"it; the agent of host {target.name} does; now recorded on host {target.name}")
        events.record_system(s, vm.account_id, events.VM_RECONCILE, text)
        uow.commit()
    out.repairs.append(text)


def _check_volumes(db, agent, volumes: list[VolumeRow], since, out) -> None:
    asker = _Asker(agent)
    by_host: dict[str | None, list[VolumeRow]] = defaultdict(list)
    for v in volumes:
        by_host[v.host_name].append(v)
    for host_name, group in by_host.items():
        for v in group:
            if host_name is None:
                _skip(out, f"volume {v.name}", "no host's agent can be asked", volume=v.uuid)
                continue
            answered, truth = asker.ask(host_name, agent.get_volume, v.base_url, v.uuid)
            if not answered:
                continue  # logged once per host by the asker
            verdict = volume_verdict(v.pool_uuid, v.size, truth)
            if verdict.action == "skip":
                _skip(out, f"volume {v.name}", f"{verdict.why} (recorded on pool {v.pool_name}, "
                      f"asked host {host_name})", volume=v.uuid, host=host_name)
            elif verdict.action == "repair":
                answered, again = asker.ask(host_name, agent.get_volume, v.base_url, v.uuid)
                if answered and volume_verdict(v.pool_uuid, v.size, again) == verdict:
                    _repair_volume(db, v, host_name, verdict.target, since, out)
                elif answered:
                    _skip(out, f"volume {v.name}", "the agent's answer changed", volume=v.uuid)


def _repair_volume(db: Database, v: VolumeRow, host_name: str, pool_uuid: str, since, out) -> None:
    with db.uow() as uow:
        s = uow.session
        pool = s.scalar(select(StoragePool).where(StoragePool.uuid == pool_uuid))
        if pool is None:
            _skip(out, f"volume {v.name}", f"its data is on pool {pool_uuid}, which the database does "
                  f"not know", volume=v.uuid)
            return
        stmt = update(Volume).where(Volume.id == v.id, Volume.state == VolumeState.READY,
                                    Volume.pool_id == v.pool_id, ~_owned("Volume", v.id, since))
        if v.vm_id is not None:
            stmt = stmt.where(~_owned("VirtualMachine", v.vm_id, since))
        result = s.execute(stmt.values(pool_id=pool.id, last_pool_id=v.pool_id)
                           .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            _skip(out, f"volume {v.name}", "changed in the database meanwhile", volume=v.uuid)
            return
        text = (f"volume {v.name} was recorded Ready on pool {v.pool_name}, but the agent on host "
                f"{host_name} finds its complete data ({v.size} bytes) only on pool {pool.name}; "
                f"now recorded on pool {pool.name}")
        events.record_system(s, v.account_id, events.VOLUME_RECONCILE, text)
        uow.commit()
    out.repairs.append(text)
