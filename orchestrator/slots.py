"""Admission: at most N storage migrations per host (and M per pool) at once, in submission order.

A job takes its slots in the same transaction that moves it from ``queued`` to ``dispatched``:
the rows of its hosts (and pools) are locked in id order (FOR NO KEY UPDATE: the foreign-key
checks of finishing jobs take FOR KEY SHARE on the same rows and must not deadlock with it), the
dispatched jobs using them are
counted, and the job goes only if it is under every limit and no older queued job waits for one
of its hosts. A slot is simply "a pending job in phase dispatched/finishing", so it is freed when
the job ends, and a dead worker's job keeps its slot until recovery ends it - never above the
limit, never leaked. SQLite ignores FOR UPDATE; there BEGIN IMMEDIATE serialises the writers.

Wake-ups. A job that was never tried still has its own message in the broker; only a job that
was *refused* (its message consumed, its ``status_text`` "waiting: ...", no lease) needs one. It
is refused, and its lease released, in one transaction under its hosts' locks; whoever frees or
leaves free a slot of those hosts - a job that ends, or one that is dispatched while another
slot stays free (two jobs of a host admitted at once: the younger is refused because the older
is still queued) - takes the same locks and wakes the oldest refused jobs, one per free slot not
already promised to a job woken before. Waking clears the job's "waiting" mark (and stamps
``published_at``), so a job is woken once per refusal, and the scheduler's sweep, which wakes
only jobs published more than a quiet period ago, does not wake it again.
"""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import bindparam, func, literal_column, or_, select, update
from sqlalchemy.orm import Session

from . import globalconfig
from .db import fast_execute
from .models import AsyncJob, Host, HypervisorCapability, JobResource, StoragePool, utcnow
from .states import JobPhase, JobStatus

ACTIVE = (JobPhase.DISPATCHED, JobPhase.FINISHING)
# ``phase IN (...)`` with the phases written into the SQL: an IN over a Python list is an
# expanding parameter, which SQLAlchemy renders again at every run of an otherwise cached statement
_ACTIVE_SQL = tuple(literal_column(f"'{phase}'") for phase in ACTIVE)
# Pending and queued written into the SQL too: the partial indexes of queued jobs by host
# (migration 0009) serve only a query that names them as literals - a prepared statement's
# generic plan cannot assume a parameter's value - and psycopg prepares a statement run often.
_PENDING = literal_column(str(int(JobStatus.PENDING)))
_QUEUED = literal_column(f"'{JobPhase.QUEUED}'")
WAITING = "waiting: "  # status_text of a refused job (why it waits), until it is woken
MAX_WOKEN = 32  # refused jobs woken per host at once (at most its free slots)


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
    known = s.info.setdefault("motion.capability_limits", {})  # once per unit of work
    key = (host.hypervisor, host.hypervisor_version)
    if key not in known:
        limit = s.scalar(select(HypervisorCapability.max_storage_migrations).where(
            HypervisorCapability.hypervisor_type == host.hypervisor,
            HypervisorCapability.hypervisor_version == host.hypervisor_version))
        known[key] = limit if limit is not None else 2
    return known[key]


def _uses_host(host_id: int):
    return or_(AsyncJob.host_id == host_id, AsyncJob.dest_host_id == host_id)


def running_on_host(s: Session, host_id: int) -> int:
    return s.scalar(select(func.count()).select_from(AsyncJob).where(
        AsyncJob.status == _PENDING, AsyncJob.phase.in_(_ACTIVE_SQL), _uses_host(host_id)))


def running_on_pool(s: Session, pool_id: int) -> int:
    return s.scalar(select(_pool_running(pool_id)))


@lru_cache(maxsize=16)
def _lock_hosts_statement(count: int):
    """The columns admission and wake-ups read (rows, not ORM objects: cheaper to build); a bound
    parameter per host (``h0``...), not an expanding IN, which is rendered again at each run."""
    return (select(Host.id, Host.name, Host.hypervisor, Host.hypervisor_version, Host.max_storage_migrations)
            .where(Host.id.in_([bindparam(f"h{i}") for i in range(count)])).order_by(Host.id)
            .with_for_update(of=Host, key_share=True))


@lru_cache(maxsize=64)
def _lock_pools_statement(count: int, looked_hosts: int):
    """Lock pools in id order; with a column per host saying whether refused jobs wait for it."""
    columns = [_has_refused(bindparam(f"h{i}")) for i in range(looked_hosts)]
    return (select(StoragePool.id, *columns).where(StoragePool.id.in_([bindparam(f"p{i}") for i in range(count)]))
            .order_by(StoragePool.id).with_for_update(of=StoragePool, key_share=True))


def lock(s: Session, host_ids: list[int], pool_ids: list[int] = (), refused: set[int] | None = None) -> list:
    """Lock the rows of these hosts and pools, in id order (admission and wake-ups serialise here).
    Returns the hosts as rows with the columns of ``_lock_hosts_statement``.

    ``refused``, when given, receives the ids of the hosts that refused jobs wait for, read in
    the pools' statement (one round trip less for a finishing job): it starts after the hosts are
    locked, and a job is refused only under its hosts' locks, so no refusal of these hosts can
    commit after it until the caller's transaction ends. Without pools to lock, every host is
    reported (``wake_refused`` then looks itself). The statements are built once."""
    s.flush()  # what the session holds goes first, as a query through it would do
    hosts = fast_execute(s, _lock_hosts_statement(len(host_ids)), {
        f"h{i}": h for i, h in enumerate(host_ids)}).all() if host_ids else []
    if pool_ids:
        looked = hosts if refused is not None else []
        found = fast_execute(s, _lock_pools_statement(len(pool_ids), len(looked)), {
            **{f"p{i}": p for i, p in enumerate(pool_ids)}, **{f"h{i}": h.id for i, h in enumerate(looked)}}).first()
        if refused is not None:
            refused.update(h.id for h, waiting in zip(hosts, found[1:] if found else [True] * len(hosts))
                           if waiting)
    elif refused is not None:
        refused.update(h.id for h in hosts)
    return hosts


def _capability_limit(hypervisor, version):
    return (select(HypervisorCapability.max_storage_migrations)
            .where(HypervisorCapability.hypervisor_type == hypervisor,
                   HypervisorCapability.hypervisor_version == version)
            .limit(1).scalar_subquery())


def _count(*where):
    return select(func.count()).select_from(AsyncJob).where(*where).scalar_subquery()


def _has_refused(host_id: int):
    return select(AsyncJob.id).where(*_refused(host_id)).exists()


def _pool_running(pool_id: int):
    return (select(func.count(func.distinct(AsyncJob.id))).select_from(AsyncJob)
            .join(JobResource, JobResource.job_id == AsyncJob.id)
            .where(AsyncJob.status == _PENDING, AsyncJob.phase.in_(_ACTIVE_SQL),
                   or_(JobResource.src_pool_id == pool_id, JobResource.dest_pool_id == pool_id))
            .scalar_subquery())


@lru_cache(maxsize=16)
def _look_statement(hosts: int, pools: int):
    job = bindparam("job")
    columns = []
    for i in range(hosts):
        host = bindparam(f"h{i}")
        columns += [_count(AsyncJob.status == _PENDING, AsyncJob.phase == _QUEUED,
                           _uses_host(host), AsyncJob.id < job),
                    _count(AsyncJob.status == _PENDING, AsyncJob.phase.in_(_ACTIVE_SQL), _uses_host(host)),
                    _has_refused(host), _capability_limit(bindparam(f"hv{i}"), bindparam(f"hvv{i}"))]
    columns += [_pool_running(bindparam(f"p{j}")) for j in range(pools)]
    return select(*columns)


def look(s: Session, job_id: int, hosts: list[Host], pools: list[int]) -> tuple[dict, dict]:
    """What admission needs, in one statement (built once per number of hosts and pools), once
    the hosts (and pools) are locked: per host (older queued jobs waiting for it, jobs running on
    it, whether refused jobs wait for it, its limit), per pool the jobs running on it. The
    capability limits are remembered for the unit of work (``host_limit``)."""
    params = {"job": job_id, **{f"p{j}": p for j, p in enumerate(pools)}}
    for i, host in enumerate(hosts):
        params.update({f"h{i}": host.id, f"hv{i}": host.hypervisor, f"hvv{i}": host.hypervisor_version})
    values = list(fast_execute(s, _look_statement(len(hosts), len(pools)), params).one()) \
        if hosts or pools else []
    known = s.info.setdefault("motion.capability_limits", {})
    per_host = {}
    for i, host in enumerate(hosts):
        older, running, refused, capability = values[4 * i: 4 * i + 4]
        known.setdefault((host.hypervisor, host.hypervisor_version), capability if capability is not None else 2)
        per_host[host.id] = (int(older), int(running), bool(refused), host_limit(s, host))
    per_pool = dict(zip(pools, (int(v) for v in values[4 * len(hosts):])))
    return per_host, per_pool


def admit(s: Session, job: AsyncJob, pools: list[int] | None = None,
          hosts: list[Host] | None = None, refused: set[int] | None = None) -> str | None:
    """Lock (unless ``hosts`` were locked already, with the pools) and check; None when the job
    may dispatch now, else why it waits. ``refused``, when given, receives the ids of the hosts
    that refused jobs wait for (only those need ``wake_refused`` after a dispatch)."""
    pools = job_pools(s, job.id) if pools is None else sorted(set(pools))
    if hosts is None:
        hosts = lock(s, job_hosts(job), pools)
    per_host, per_pool = look(s, job.id, hosts, pools)
    if refused is not None:
        refused.update(h for h, facts in per_host.items() if facts[2])
    for host in hosts:
        older, running, _, limit = per_host[host.id]
        if older:
            return f"an older job waits for host {host.name}"
        if running >= limit:
            return f"host {host.name} runs {limit} storage migrations already (its limit)"
    if pools:
        cap = int(float(globalconfig.get(s, "pool.storage.migration.limit")))
        for pool_id, running in per_pool.items():
            if running >= cap:
                return f"pool {s.get(StoragePool, pool_id).name} has {cap} migrations running (its cap)"
    return None


def refuse(s: Session, job_id: int, owner: str, why: str) -> bool:
    """Leave the job queued with why it waits, and release its lease, in the admission
    transaction (so that a wake-up published after it commits always finds the job claimable)."""
    result = s.execute(update(AsyncJob).where(AsyncJob.id == job_id, AsyncJob.lease_owner == owner,
                                              AsyncJob.status == JobStatus.PENDING)
                       .values(status_text=(WAITING + why)[:1000], lease_owner=None,
                               lease_expires_at=None, last_updated=utcnow())
                       .execution_options(synchronize_session=False))
    return result.rowcount == 1


def _refused(host_id: int):
    return (AsyncJob.status == _PENDING, AsyncJob.phase == _QUEUED, _uses_host(host_id),
            AsyncJob.lease_owner.is_(None), AsyncJob.status_text.like(WAITING + "%"))


def _woken(host_id: int):
    """Woken (or being tried again) but not yet admitted: each will take a slot if it can."""
    return (AsyncJob.status == _PENDING, AsyncJob.phase == _QUEUED, _uses_host(host_id),
            AsyncJob.attempt > 0, AsyncJob.status_text.is_(None), AsyncJob.lease_owner.is_(None))


def wake_refused(s: Session, hosts: list[Host], only: set[int] | None = None) -> list[int]:
    """The oldest refused jobs of these (locked) hosts, one per slot that is free and not promised
    to a job woken already; marked woken here, to be published after the caller commits.
    ``only``: the hosts known (under the same locks) to have refused jobs; the others are skipped."""
    chosen: list[int] = []
    for host in hosts:
        if only is not None and host.id not in only:
            continue
        refused = [j for j in s.scalars(select(AsyncJob.id).where(*_refused(host.id))
                                        .order_by(AsyncJob.id).limit(MAX_WOKEN + len(chosen)))
                   if j not in chosen]
        if not refused:  # the common case: one statement
            continue
        limit = host_limit(s, host)
        free = limit - running_on_host(s, host.id) - s.scalar(
            select(func.count()).select_from(AsyncJob).where(*_woken(host.id)))
        found = refused[:max(0, min(free, MAX_WOKEN))]
        if found:
            s.execute(update(AsyncJob).where(AsyncJob.id.in_(found), AsyncJob.lease_owner.is_(None))
                      .values(status_text=None, published_at=utcnow())
                      .execution_options(synchronize_session=False))
            chosen += found
    return chosen


def queue_position(s: Session, job: AsyncJob) -> int:
    """1 + queued jobs submitted before this one that wait for one of its hosts."""
    hosts = job_hosts(job)
    if not hosts:
        return 1
    queued = (AsyncJob.status == JobStatus.PENDING, AsyncJob.phase == JobPhase.QUEUED, AsyncJob.id < job.id)
    from_hosts = select(func.count()).select_from(AsyncJob).where(*queued, AsyncJob.host_id.in_(hosts))
    to_hosts = select(func.count()).select_from(AsyncJob).where(  # VM moves to them from elsewhere
        *queued, AsyncJob.dest_host_id.in_(hosts), or_(AsyncJob.host_id.is_(None), AsyncJob.host_id.not_in(hosts)))
    return 1 + s.scalar(select(from_hosts.scalar_subquery() + to_hosts.scalar_subquery()))
