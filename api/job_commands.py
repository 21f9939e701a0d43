"""Async job commands: queryAsyncJobResult, listAsyncJobs, and migrateVolume's intake."""
from __future__ import annotations

from sqlalchemy import and_, bindparam, case, false, func, literal_column, select

from orchestrator import cancel, intake_pg, intake_rows, models as m, motion, responses, slots
from orchestrator.errors import InvalidParameter, PermissionDenied
from orchestrator.states import JobPhase, JobStatus

from .params import UUID_RE
from .registry import Context, command, like, listing


def _render(ctx: Context):
    cache: dict[int, tuple] = {}

    def render(job: m.AsyncJob) -> dict:
        if job.user_id not in cache:
            user = ctx.session.get(m.User, job.user_id)
            cache[job.user_id] = (user.account, user)
        account, user = cache[job.user_id]
        position = slots.queue_position(ctx.session, job) if job.status == 0 and job.phase == "queued" else None
        return responses.async_job(job, account, user, position)
    return render


# What ``responses.async_job_fields`` and the permission check read of a job.
POLL_COLUMNS = ("uuid", "account_id", "cmd", "status", "proc_status", "result_code", "created", "params",
                "result", "phase", "bytes_done", "bytes_total", "rate", "eta", "progress",
                "cancel_requested_at", "status_text")


def _poll_query():
    """One statement for a poll: the job, its user's and account's UUIDs, and - while it is queued -
    its queue position, computed as ``slots.queue_position`` does (1 + the queued jobs submitted
    before it that use one of its hosts; a test compares the two). The status and phase are
    literals, so that the count can use the partial indexes of queued jobs by host (migrations
    0009 and 0011) in a prepared statement's generic plan too. The count is two: the jobs from
    one of its hosts, then the VM moves to one of its hosts from elsewhere, each on its own index
    (an OR of the two would read the table's rows for both, and an index-only scan can skip
    them where the visibility map allows)."""
    job, user, account = m.AsyncJob.__table__, m.User.__table__, m.Account.__table__
    hosts = [job.c.host_id, job.c.dest_host_id]
    pending, queued = literal_column(str(int(JobStatus.PENDING))), literal_column(f"'{JobPhase.QUEUED}'")

    def ahead(older, *where):
        return (select(func.count()).select_from(older)
                .where(older.c.status == pending, older.c.phase == queued, older.c.id < job.c.id, *where)
                .scalar_subquery())
    by_source, by_dest = job.alias("older"), job.alias("older_vm")
    position = case((and_(job.c.status == pending, job.c.phase == queued),
                     literal_column("1") + ahead(by_source, by_source.c.host_id.in_(hosts))
                     + ahead(by_dest, by_dest.c.dest_host_id.in_(hosts),
                             ~func.coalesce(by_dest.c.host_id.in_(hosts), false()))), else_=None)
    shown = [job.c[name] for name in POLL_COLUMNS]
    return (select(*shown, user.c.uuid.label("user_uuid"), account.c.uuid.label("account_uuid"),
                   position.label("queue_position"))
            .join_from(job, user, job.c.user_id == user.c.id)
            .join_from(user, account, user.c.account_id == account.c.id))


POLL = _poll_query()
POLL_ONE = POLL.where(m.AsyncJob.__table__.c.uuid == bindparam("uuid"))
POLL_EITHER = POLL.where(m.AsyncJob.__table__.c.uuid.in_([bindparam("uuid"), bindparam("exact")]))


@command("queryAsyncJobResult")
def query_async_job_result(ctx: Context) -> dict:
    value = ctx.params.required("jobid")
    if not UUID_RE.match(value):
        raise ctx.params.invalid("jobid", value)
    return poll(ctx.read_fast, ctx.caller, value, ctx.params.invalid)


def poll(read_fast, caller, value: str, invalid=InvalidParameter) -> dict:
    """The body of ``queryAsyncJobResult`` for job UUID ``value`` (already checked to be one) as
    ``caller`` may see it; ``invalid(name, value)`` makes the error for an unknown job. Shared
    with the poll's fast lane (``api.fast``)."""
    if value == value.lower():
        rows = read_fast(POLL_ONE, {"uuid": value})
    else:  # stored lower-cased; an exact match is accepted too, as Params.entity does
        rows = read_fast(POLL_EITHER, {"uuid": value.lower(), "exact": value})
    if not rows:
        raise invalid("jobid", value)
    job = min(rows, key=lambda row: row.uuid != value.lower())
    if caller.account_type == 0 and job.account_id != caller.account_id:
        raise PermissionDenied(f"Account does not have permission to see job {job.uuid}")
    return responses.async_job_fields(job, job.account_uuid, job.user_uuid, job.queue_position)


@command("listAsyncJobs")
def list_async_jobs(ctx: Context) -> dict:
    q = select(m.AsyncJob).order_by(m.AsyncJob.id)
    if ctx.caller.account_type == 0:
        q = q.where(m.AsyncJob.account_id == ctx.caller.account_id)
    if ctx.params.get("keyword"):
        q = q.where(m.AsyncJob.cmd.like(like(ctx.params.get("keyword")), escape="\\"))
    if ctx.params.get("startdate"):
        from .signing import parse_expires

        start = parse_expires(ctx.params.get("startdate"))
        if start is None:
            raise InvalidParameter(f"Invalid value {ctx.params.get('startdate')!r} for parameter "
                                   f"startdate: use yyyy-MM-dd'T'HH:mm:ssZ, e.g. 2026-11-25T19:00:00+0000")
        q = q.where(m.AsyncJob.created >= start.replace(tzinfo=None))
    return listing(ctx, q, "asyncjobs", _render(ctx))


@command("migrateVolume", admin_only=True)
def migrate_volume(ctx: Context) -> dict:
    # On PostgreSQL two statements and no transaction (``intake_pg``); otherwise, and when an id is
    # not a lower-case UUID or names nothing, the request's own unit of work, which loads what intake
    # checks and then commits (``motion.accept_volume_migration``).
    volume_uuid, pool_uuid = ctx.params.get("volumeid"), ctx.params.get("storageid")
    found = None
    if all(value and value == value.lower() and UUID_RE.match(value) for value in (volume_uuid, pool_uuid)):
        livemigrate = ctx.params.boolean("livemigrate")
        if ctx.db.engine.dialect.name == "postgresql":  # two statements, no transaction (``intake_pg``)
            params = {"volumeid": volume_uuid, "storageid": pool_uuid, "livemigrate": str(livemigrate).lower()}
            job_uuid = intake_pg.submit(ctx.db, ctx.enqueue, ctx.caller, volume_uuid, pool_uuid, livemigrate, params)
            if job_uuid is not None:
                return {"jobid": job_uuid}
        else:  # what intake reads of both, in one statement, as plain rows (``intake_rows``)
            found = intake_rows.volume_and_pool(ctx.session.connection(), volume_uuid, pool_uuid)
    if found is not None:
        volume, pool = found
    else:  # one is missing, malformed or mixed-case: one by one, which also says which is wrong
        volume = ctx.params.entity(ctx.session, m.Volume, "volumeid", required=True,
                                   options=motion.VOLUME_INTAKE_OPTIONS)
        pool = ctx.params.entity(ctx.session, m.StoragePool, "storageid", required=True)
    livemigrate = ctx.params.boolean("livemigrate")
    params = {"volumeid": volume.uuid, "storageid": pool.uuid, "livemigrate": str(livemigrate).lower()}
    job_uuid = motion.accept_volume_migration(ctx.db, ctx.uow, ctx.enqueue, ctx.caller, volume, pool,
                                              livemigrate, params)
    return {"jobid": job_uuid}


@command("cancelAsyncJob", admin_only=True)
def cancel_async_job(ctx: Context) -> dict:
    """An extension: cancel a pending migration job (see orchestrator.cancel)."""
    job = ctx.params.entity(ctx.session, m.AsyncJob, "jobid", required=True)
    job_id = job.id
    ctx.session.rollback()
    cancel.cancel_job(ctx.db, ctx.settings, ctx.caller, job_id, ctx.enqueue)
    return _render(ctx)(ctx.session.get(m.AsyncJob, job_id))
