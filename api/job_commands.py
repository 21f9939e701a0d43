"""Async job commands: queryAsyncJobResult, listAsyncJobs, and migrateVolume's intake."""
from __future__ import annotations

from sqlalchemy import select

from orchestrator import cancel, models as m, motion, responses, slots
from orchestrator.errors import InvalidParameter, PermissionDenied

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


@command("queryAsyncJobResult")
def query_async_job_result(ctx: Context) -> dict:
    job = ctx.params.entity(ctx.session, m.AsyncJob, "jobid", required=True)
    if ctx.caller.account_type == 0 and job.account_id != ctx.caller.account_id:
        raise PermissionDenied(f"Account does not have permission to see job {job.uuid}")
    return _render(ctx)(job)


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
    volume = ctx.params.entity(ctx.session, m.Volume, "volumeid", required=True)
    pool = ctx.params.entity(ctx.session, m.StoragePool, "storageid", required=True)
    livemigrate = ctx.params.boolean("livemigrate")
    ids = (volume.id, pool.id)
    params = {"volumeid": volume.uuid, "storageid": pool.uuid, "livemigrate": str(livemigrate).lower()}
    # Intake runs in its own unit of work: end this read transaction first (on SQLite it holds
    # the write lock) and do not touch its objects afterwards.
    ctx.session.rollback()
    job_uuid = motion.migrate_volume(ctx.db, ctx.enqueue, ctx.caller, *ids, livemigrate, params)
    return {"jobid": job_uuid}


@command("cancelAsyncJob", admin_only=True)
def cancel_async_job(ctx: Context) -> dict:
    """An extension: cancel a pending migration job (see orchestrator.cancel)."""
    job = ctx.params.entity(ctx.session, m.AsyncJob, "jobid", required=True)
    job_id = job.id
    ctx.session.rollback()
    cancel.cancel_job(ctx.db, ctx.settings, ctx.caller, job_id)
    return _render(ctx)(ctx.session.get(m.AsyncJob, job_id))
