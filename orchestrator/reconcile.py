"""The scheduler's sweep and the reconciler: nothing stuck, nothing lost, no SQL by hand.

``sweep`` publishes jobs committed but never published (a crash between commit and publish, or
the broker down) and wakes every pending job that nobody holds (a lost message, a worker killed
mid-job, a queued job waiting for a slot), oldest first. Whoever claims such a job resumes it
from its phase and asks the agent what really happened.

``repair_orphans`` finds volumes and VMs in ``Migrating`` that no pending job owns - which the
transactions here never leave behind, but a bug or a hand edit could - asks the agents where
the data and the VM really are, records them there, and leaves an event for each repair; each
repair is a unit of work of its own.
``orchestrator.truth`` does the same for objects at rest (Ready volumes, Running VMs) whose
agent truth differs from the database; the sweep runs it every ``reconcile.truth.interval`` s.
``orchestrator.expiry`` expunges finished jobs past ``job.expire.minutes``; the sweep runs it
once a minute.
"""
from __future__ import annotations

import logging
from typing import Callable, Protocol

from datetime import timedelta

from sqlalchemy import or_, select, update

from . import expiry, truth
from .config import Settings
from .db import Database, cas
from .events import record_system
from .errors import AgentUnreachable, ConcurrentOperation, MotionError
from .models import AsyncJob, Host, JobResource, StoragePool, VirtualMachine, Volume, utcnow
from .motion import publish_unpublished
from .provision import agent_host_for
from .states import JobStatus, VmState, VolumeState

log = logging.getLogger(__name__)


class TruthPort(Protocol):
    def get_volume(self, base_url: str, volume_id: str) -> dict | None: ...
    def get_vm(self, base_url: str, name: str) -> dict | None: ...


def wake_stranded(db: Database, enqueue: Callable[[int], None], limit: int = 200,
                  quiet_s: float = 15.0, backlog: int | None = None) -> int:
    """Publish pending jobs without a live lease (any phase), oldest first - each at most once per
    ``quiet_s`` after it was last published (by intake, a wake-up from a job that freed a slot,
    or this sweep), so a long queue does not flood the broker with wake-ups.

    ``backlog``: messages still waiting in the broker's queue (None: ask ``enqueue.backlog()``
    if the publisher has it, else unknown). While there are some, a job never tried
    (``attempt`` 0) is left alone: its own message is most likely among them, and publishing it
    again would only make a worker run it twice. Once the queue is
    empty, such a job still pending has lost its message, and is woken."""
    if backlog is None and callable(getattr(enqueue, "backlog", None)):
        backlog = enqueue.backlog()
    now = utcnow()
    never_tried_too = () if not backlog else (AsyncJob.attempt > 0,)
    with db.uow() as uow:
        ids = list(uow.session.scalars(select(AsyncJob.id).where(
            AsyncJob.status == JobStatus.PENDING, AsyncJob.published_at.is_not(None),
            AsyncJob.published_at < now - timedelta(seconds=quiet_s),
            or_(AsyncJob.lease_owner.is_(None), AsyncJob.lease_expires_at < now), *never_tried_too)
            .order_by(AsyncJob.id).limit(limit)))
        if ids:
            uow.session.execute(update(AsyncJob).where(AsyncJob.id.in_(ids)).values(published_at=now)
                                .execution_options(synchronize_session=False))
            uow.commit()
    for job_id in ids:
        enqueue(job_id)
    return len(ids)


def sweep(db: Database, enqueue: Callable[[int], None], agent: TruthPort | None = None,
          settings: Settings | None = None) -> dict:
    """One round of the scheduler: outbox, stranded jobs, and (given an agent client) orphans."""
    published = publish_unpublished(db, enqueue)
    woken = wake_stranded(db, enqueue)
    repaired = repair_orphans(db, agent, settings) if agent is not None and settings is not None else []
    if agent is not None and settings is not None:  # Ready volumes / Running VMs vs the agents
        repaired += truth.reconcile_if_due(db, agent, settings)  # every reconcile.truth.interval s
    expunged = expiry.expire_if_due(db)  # finished jobs past job.expire.minutes, once a minute
    if published or woken:
        log.info("sweep: published %d unpublished job(s), woke %d job(s)", published, woken)
    return {"published": published, "woken": woken, "repaired": len(repaired), "expunged": expunged}


def _owned(resource_type: str):
    return (select(JobResource.resource_id).join(AsyncJob, AsyncJob.id == JobResource.job_id)
            .where(JobResource.resource_type == resource_type, AsyncJob.status == JobStatus.PENDING))


def repair_orphans(db: Database, agent: TruthPort, settings: Settings) -> list[str]:
    """Bring orphaned Migrating volumes and VMs in line with the agents' truth."""
    with db.uow() as uow:
        s = uow.session
        volumes = list(s.scalars(select(Volume.id).where(Volume.state == VolumeState.MIGRATING,
                                                         Volume.id.not_in(_owned("Volume")))))
        vms = list(s.scalars(select(VirtualMachine.id).where(VirtualMachine.state == VmState.MIGRATING,
                                                             VirtualMachine.id.not_in(_owned("VirtualMachine")))))
    # One unit of work per object: a repair moves at most one volume between pools (whose
    # allocation triggers lock the two pools in id order, as every other writer does), so it
    # cannot deadlock with a finishing job; and one that loses a race leaves the others done.
    repairs = []
    for model, ids, repair in ((Volume, volumes, _repair_volume), (VirtualMachine, vms, _repair_vm)):
        for row_id in ids:
            with db.uow() as uow:
                obj = uow.session.get(model, row_id)
                try:
                    text = repair(uow.session, agent, settings, obj) if obj is not None else None
                    if text:
                        uow.commit()
                except ConcurrentOperation as exc:  # a job or another sweep got there first
                    log.info("reconciler: %s changed meanwhile; left alone: %s", model.__name__, exc)
                    text = None
            if text:
                log.warning("reconciler: %s", text)
                repairs.append(text)
    return repairs


def _repair_volume(s, agent: TruthPort, settings: Settings, volume: Volume) -> str | None:
    host = agent_host_for(s, volume)
    try:
        truth = agent.get_volume(settings.agent_url_for(host.name, host.agent_url), volume.uuid) if host else None
    except (AgentUnreachable, MotionError) as exc:
        log.warning("reconciler: cannot ask about volume %s yet: %s", volume.name, exc)
        return None
    pools = {p.uuid: p for p in s.scalars(select(StoragePool).where(StoragePool.uuid.in_(
        [loc.get("pool") for loc in (truth or {}).get("locations", [])])))}
    where = volume.pool if volume.pool.uuid in pools or not pools else next(iter(pools.values()))
    changes = {"state": VolumeState.READY}
    if where.id != volume.pool_id:
        changes.update(pool_id=where.id, last_pool_id=volume.pool_id)
    cas(s, Volume, volume.id, {"state": VolumeState.MIGRATING, "pool_id": volume.pool_id}, changes)
    text = (f"volume {volume.name} was Migrating with no job; the agent reports its data on pool "
            f"{where.name}" if pools else f"volume {volume.name} was Migrating with no job; the agent "
            f"knows no copy, so it stays recorded on pool {where.name}") + "; now Ready there"
    record_system(s, volume.account_id, "VOLUME.RECONCILE", text)
    return text


def _repair_vm(s, agent: TruthPort, settings: Settings, vm: VirtualMachine) -> str | None:
    candidates = [h for h in (vm.host, s.get(Host, vm.last_host_id) if vm.last_host_id else None) if h]
    found = None
    for host in candidates:
        try:
            if agent.get_vm(settings.agent_url_for(host.name, host.agent_url), vm.instance_name):
                found = host
                break
        except (AgentUnreachable, MotionError) as exc:
            log.warning("reconciler: cannot ask host %s about VM %s yet: %s", host.name, vm.name, exc)
            return None
    where = found or vm.host
    cas(s, VirtualMachine, vm.id, {"state": VmState.MIGRATING, "host_id": vm.host_id},
        {"state": VmState.RUNNING, "host_id": where.id})
    text = f"VM {vm.name} was Migrating with no job; {'the agent reports it on' if found else 'no agent reports it; it stays on'} host {where.name}; now Running there"
    record_system(s, vm.account_id, "VM.RECONCILE", text)
    return text
