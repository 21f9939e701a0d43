"""Finished jobs expire after ``job.expire.minutes`` (CloudStack's, default 1440) on PostgreSQL:
the job and its resources go, its events stay, the API no longer knows it; pending jobs and
recent ones are never touched. Events are purged after ``event.purge.delay`` days (15)."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, text

from orchestrator import expiry, models, reconcile
from orchestrator.config import Settings
from orchestrator.models import utcnow
from orchestrator.runner import Runner

pytestmark = pytest.mark.postgres


class Agent:
    """A fake agent whose commands succeed at the first look."""

    def post_command(self, base_url, payload):
        return {"id": payload["id"], "state": "running"}

    def get_command(self, base_url, command_id):
        return {"id": command_id, "state": "succeeded", "bytesDone": 1, "bytesTotal": 1,
                "result": {"volumePath": "p.vhdx"}}

    def abort_command(self, base_url, command_id):
        return {"id": command_id, "state": "aborted"}

    def get_volume(self, base_url, volume_id):
        return None


def uuid_of(db, model, name):
    with db.uow() as uow:
        return uow.session.scalar(select(model.uuid).where(model.name == name))


def submit(env, volume, pool) -> tuple[int, str]:
    db = env["db"]
    status, body = env["admin"].call("migrateVolume", volumeid=uuid_of(db, models.Volume, volume),
                                   storageid=uuid_of(db, models.StoragePool, pool), livemigrate="true")
    assert status == 200, body
    return env["enqueued"][-1], body["migratevolumeresponse"]["jobid"]


def finish(env, job_id):
    conf = Settings(database_url=env["db"].url, worker_id="w", poll_interval=0.01, lease_seconds=30,
                    agent_url="http://a.invalid/{host}")
    assert Runner(env["db"], Agent(), conf).run(job_id) == "succeeded"


def age(db, job_id, minutes):
    """Make a job look ``minutes`` older: created, and completed if it has finished."""
    with db.uow() as uow:
        job = uow.session.get(models.AsyncJob, job_id)
        job.created -= timedelta(minutes=minutes)
        if job.completed_at is not None:
            job.completed_at -= timedelta(minutes=minutes)
        uow.commit()


def rows(db, model, **where):
    with db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def set_config(db, name, value):
    with db.uow() as uow:
        uow.session.get(models.Configuration, name).value = value
        uow.commit()


def test_a_finished_job_past_the_expiry_goes_with_its_resources_and_its_events_stay(env):
    db, api = env["db"], env["admin"]
    old, old_uuid = submit(env, "vm1-root", "c1-gold-2")
    finish(env, old)
    age(db, old, 1441)
    recent, recent_uuid = submit(env, "vm1-root", "c1-gold")
    finish(env, recent)
    pending, pending_uuid = submit(env, "vm2-root", "c1-gold")
    age(db, pending, 3 * 1440)  # pending for three days: still live, never expunged
    events_before = rows(db, models.Event)
    assert rows(db, models.JobResource, job_id=old) == 1

    assert expiry.expire_finished(db) == 1

    assert rows(db, models.AsyncJob, id=old) == 0 and rows(db, models.JobResource, job_id=old) == 0
    assert rows(db, models.Event) == events_before and rows(db, models.Event, job_id=old) == 0
    status, body = api.call("queryAsyncJobResult", jobid=old_uuid)
    assert status == 431 and old_uuid in body["queryasyncjobresultresponse"]["errortext"]
    listed = api.call("listAsyncJobs")[1]["listasyncjobsresponse"]["asyncjobs"]
    assert sorted(j["jobid"] for j in listed) == sorted([recent_uuid, pending_uuid])
    assert api.call("queryAsyncJobResult", jobid=pending_uuid)[1]["queryasyncjobresultresponse"]["jobstatus"] == 0
    assert expiry.expire_finished(db) == 0


def test_zero_keeps_finished_jobs_forever(env):
    db = env["db"]
    job, _ = submit(env, "vm1-root", "c1-gold-2")
    finish(env, job)
    age(db, job, 365 * 1440)
    set_config(db, "job.expire.minutes", "0")
    assert expiry.expire_finished(db) == 0
    assert rows(db, models.AsyncJob, id=job) == 1


def test_a_run_expunges_at_most_its_batch_the_oldest_first(env):
    db = env["db"]
    jobs = []
    for pool in ("c1-gold-2", "c1-gold", "c1-gold-2"):
        job, _ = submit(env, "vm1-root", pool)
        finish(env, job)
        jobs.append(job)
    for job, days in zip(jobs, (4, 2, 3)):
        age(db, job, days * 1440)
    assert expiry.expire_finished(db, batch=2) == 2
    assert [j for j in jobs if rows(db, models.AsyncJob, id=j)] == [jobs[1]]  # the youngest of the three
    assert expiry.expire_finished(db, batch=2) == 1
    assert rows(db, models.AsyncJob) == 0


def test_the_sweep_expires_at_most_once_a_minute_per_process(env, monkeypatch):
    db = env["db"]
    job, _ = submit(env, "vm1-root", "c1-gold-2")
    finish(env, job)
    age(db, job, 2 * 1440)
    [old_event] = events_aged(db, 16)
    monkeypatch.setattr(expiry, "_last_run", {})
    assert reconcile.sweep(db, lambda job_id: None)["expunged"] == 1
    assert rows(db, models.Event, id=old_event) == 0  # the same run purges old events
    job, _ = submit(env, "vm1-root", "c1-gold")
    finish(env, job)
    age(db, job, 2 * 1440)
    assert reconcile.sweep(db, lambda job_id: None)["expunged"] == 0  # ran less than a minute ago
    a_minute_later = expiry._last_run[db.url] + expiry.INTERVAL_S + 0.5
    assert expiry.expire_if_due(db, clock=lambda: a_minute_later) == 1


def test_expired_jobs_are_found_through_the_index_of_finished_jobs(env):
    """The sweep's look must not read the table: with many finished jobs that would be a full
    scan a minute."""
    db = env["db"]
    with db.engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.execute(text(
            "EXPLAIN SELECT id FROM async_jobs WHERE status <> 0 AND completed_at < now() "
            "ORDER BY completed_at LIMIT 1000")))
    assert "ix_async_jobs_finished_completed_at" in plan


def test_a_failing_run_is_logged_and_does_not_stop_the_sweep(env, monkeypatch, caplog):
    db = env["db"]
    monkeypatch.setattr(expiry, "_last_run", {})

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")
    monkeypatch.setattr(expiry, "expire_finished", broken)
    monkeypatch.setattr(expiry, "purge_events", broken)
    result = reconcile.sweep(db, lambda job_id: None)
    assert result == {"published": 0, "woken": 0, "repaired": 0, "expunged": 0}
    assert "job expiry: the run failed; the next one retries" in caplog.text
    assert "event purge: the run failed; the next one retries" in caplog.text
    assert "database gone" in caplog.text


def test_jobs_another_run_holds_are_skipped_so_none_is_counted_twice(env):
    db = env["db"]
    held, _ = submit(env, "vm1-root", "c1-gold-2")
    finish(env, held)
    free, _ = submit(env, "vm1-root", "c1-gold")
    finish(env, free)
    age(db, held, 2 * 1440)
    age(db, free, 2 * 1440)
    with db.engine.connect() as other:  # another run, in the middle of expunging ``held``
        other.execute(text("SELECT id FROM async_jobs WHERE id = :id FOR UPDATE"), {"id": held})
        done = []
        run = threading.Thread(target=lambda: done.append(expiry.expire_finished(db)))
        run.start()
        run.join(60)  # a run that waited for the other's lock would still be waiting
        finished_alone = not run.is_alive()
        other.rollback()
        run.join()
    assert finished_alone and done == [1]
    assert rows(db, models.AsyncJob, id=free) == 0 and rows(db, models.AsyncJob, id=held) == 1
    with db.uow() as uow:
        [totals] = uow.session.scalars(select(models.ExpiredJobTotals)).all()
        assert totals.jobs == 1
    assert expiry.expire_finished(db) == 1
    with db.uow() as uow:
        assert uow.session.scalar(select(models.ExpiredJobTotals.jobs)) == 2


def events_aged(db, *days_ago):
    """Add one event per age (days), in this order (ids grow along it); their ids."""
    with db.uow() as uow:
        user = uow.session.scalars(select(models.User).order_by(models.User.id)).first()
        added = [models.Event(type="API.test", state="Completed", description=f"{days} days old",
                              account_id=user.account_id, user_id=user.id,
                              created=utcnow() - timedelta(days=days)) for days in days_ago]
        uow.session.add_all(added)
        uow.commit()
        return [e.id for e in added]


def test_events_older_than_the_purge_delay_are_deleted_and_the_rest_kept(env):
    db = env["db"]
    with db.uow() as uow:
        uow.session.execute(delete(models.Event))
        uow.commit()
    old, young = events_aged(db, 20, 16), events_aged(db, 14, 0)
    assert expiry.purge_events(db) == 2
    assert sorted(i for (i,) in _event_ids(db)) == young
    listed = env["admin"].call("listEvents", type="API.test")[1]["listeventsresponse"]["event"]
    assert sorted(e["description"] for e in listed) == ["0 days old", "14 days old"]
    assert not set(old) & {i for (i,) in _event_ids(db)}


def test_events_are_purged_a_batch_at_a_time_from_the_lowest_ids(env):
    db = env["db"]
    with db.uow() as uow:
        uow.session.execute(delete(models.Event))
        uow.commit()
    events_aged(db, 30, 30, 30, 30, 30)
    assert expiry.purge_events(db, batch=2, batches=2) == 4
    assert expiry.purge_events(db, batch=2, batches=2) == 1
    # a batch that is not wholly old ends the run: an old event behind a batch of young ones waits
    kept = events_aged(db, 1, 1, 40)
    assert expiry.purge_events(db, batch=2, batches=5) == 0
    assert sorted(i for (i,) in _event_ids(db)) == kept


def test_a_purge_delay_of_zero_keeps_every_event(env):
    db = env["db"]
    events_aged(db, 400)
    set_config(db, "event.purge.delay", "0")
    before = rows(db, models.Event)
    assert expiry.purge_events(db) == 0 and rows(db, models.Event) == before


def _event_ids(db):
    with db.uow() as uow:
        return uow.session.execute(select(models.Event.id)).all()
