"""Admission: at most N storage migrations per host (and M per pool) at once, in submission order.

A job takes its slots in the same transaction that moves it from ``queued`` to ``dispatched``:
the rows of its hosts (and pools) are locked in id order (FOR NO KEY UPDATE: the foreign-key
checks of finishing jobs take FOR KEY SHARE on the same rows and must not deadlock with it), the
dispatched jobs using them are
counted, and the job goes only if it is under every limit and no older queued job waits for one
of its hosts. A slot is simply "a pending job in phase dispatched/finishing", so it is freed when
the job ends, and a dead worker's job keeps its slot until recovery ends it - never above the
limit, never leaked. SQLite ignores FOR UPDATE; there BEGIN IMMEDIATE serialises the writers.
"""
from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from . import globalconfig
from .models import AsyncJob, Host, HypervisorCapability, JobResource, StoragePool
from .states import JobPhase, JobStatus

ACTIVE = (JobPhase.DISPATCHED, JobPhase.FINISHING)


def job_hosts(job: AsyncJob) -> list[int]:
    """The hosts whose storage-migration slots the job needs: source, and a VM's destination."""
    return sorted({h for h in (job.host_id, job.dest_host_id) if h is not None})


def job_pools(s: Session, job_id: int) -> list[int]:
    rows = s.execute(select(JobResource.src_pool_id, JobResource.dest_pool_id)
                     .where(JobResource.job_id == job_id, JobResource.resource_type == "Volume"))
    return sorted({p for pair in rows for p in pair if p is not None})


def host_limit(s: Session, host: Host) -> int:
    if host.max_storage_migrations is not None:
        return host.max_storage_migrations
    limit = s.scalar(select(HypervisorCapability.max_storage_migrations).where(
        HypervisorCapability.hypervisor_type == host.hypervisor,
        HypervisorCapability.hypervisor_version == host.hypervisor_version))
    return limit if limit is not None else 2


def _uses_host(host_id: int):
    return or_(AsyncJob.host_id == host_id, AsyncJob.dest_host_id == host_id)


def running_on_host(s: Session, host_id: int) -> int:
    return s.scalar(select(func.count()).select_from(AsyncJob).where(
        AsyncJob.status == JobStatus.PENDING, AsyncJob.phase.in_(ACTIVE), _uses_host(host_id)))


def running_on_pool(s: Session, pool_id: int) -> int:
    return s.scalar(select(func.count(func.distinct(AsyncJob.id))).select_from(AsyncJob)
                    .join(JobResource, JobResource.job_id == AsyncJob.id)
                    .where(AsyncJob.status == JobStatus.PENDING, AsyncJob.phase.in_(ACTIVE),
                           or_(JobResource.src_pool_id == pool_id, JobResource.dest_pool_id == pool_id)))


def older_queued(s: Session, job: AsyncJob, host_id: int) -> bool:
    return bool(s.scalar(select(func.count()).select_from(AsyncJob).where(
        AsyncJob.status == JobStatus.PENDING, AsyncJob.phase == JobPhase.QUEUED,
        AsyncJob.id < job.id, _uses_host(host_id))))


def admit(s: Session, job: AsyncJob) -> str | None:
    """Lock and check; None when the job may dispatch now, else why it waits."""
    hosts = list(s.scalars(select(Host).where(Host.id.in_(job_hosts(job))).order_by(Host.id)
                           .with_for_update(key_share=True)))
    pools = job_pools(s, job.id)
    if pools:
        s.execute(select(StoragePool.id).where(StoragePool.id.in_(pools)).order_by(StoragePool.id)
                  .with_for_update(key_share=True))
    for host in hosts:
        if older_queued(s, job, host.id):
            return f"an older job waits for host {host.name}"
        limit = host_limit(s, host)
        if running_on_host(s, host.id) >= limit:
            return f"host {host.name} runs {limit} storage migrations already (its limit)"
    cap = int(float(globalconfig.get(s, "pool.storage.migration.limit")))
    for pool_id in pools:
        if running_on_pool(s, pool_id) >= cap:
            return f"pool {s.get(StoragePool, pool_id).name} has {cap} migrations running (its cap)"
    return None


def queue_position(s: Session, job: AsyncJob) -> int:
    """1 + queued jobs submitted before this one that wait for one of its hosts."""
    hosts = job_hosts(job)
    if not hosts:
        return 1
    return 1 + s.scalar(select(func.count()).select_from(AsyncJob).where(
        AsyncJob.status == JobStatus.PENDING, AsyncJob.phase == JobPhase.QUEUED, AsyncJob.id < job.id,
        or_(*[_uses_host(h) for h in hosts])))


def queued_jobs_of_hosts(s: Session, host_ids: list[int], limit: int = 20) -> list[int]:
    """The oldest queued jobs that use any of these hosts (to wake when a slot frees)."""
    if not host_ids:
        return []
    return list(s.scalars(select(AsyncJob.id).where(
        AsyncJob.status == JobStatus.PENDING, AsyncJob.phase == JobPhase.QUEUED,
        or_(*[_uses_host(h) for h in host_ids])).order_by(AsyncJob.id).limit(limit)))
