"""What the API's two hot requests cost in database work, on PostgreSQL, and that the shortcuts
behind those costs keep their promises: a poll is one statement once its caller's key is cached,
a submission is one transaction and a one-statement stamp; the cached key lapses within its lifetime when the database
says otherwise; the poll's queue position is the scheduler's.
"""
from __future__ import annotations

import json

import psycopg
import pytest
from sqlalchemy import event, select, text

from api import auth
from api.app import PING_IDLE_SECONDS
from orchestrator import models, slots
from orchestrator.prepared import PreparedRead
from orchestrator.states import JobPhase
from tests.helpers import admin_caller, ids
from tests.integration.test_security_auth_pg import assert_envelope, make_env

pytestmark = pytest.mark.postgres


class Statements:
    """Statements sent by psycopg cursors (SQLAlchemy's and those the API runs on the driver
    directly) and as libpq prepared statements (``Context.read_fast``: each PREPARE and each
    execution counts), and commits on an engine while the block runs."""

    def __init__(self, engine):
        self.engine, self.statements, self.commits = engine, [], 0

    def _commit(self, _conn):
        self.commits += 1

    def __enter__(self):
        original = self._original = psycopg.Cursor.execute
        seen = self.statements

        def execute(cursor, query, *args, **kwargs):
            seen.append(query if isinstance(query, str) else str(query))
            return original(cursor, query, *args, **kwargs)
        psycopg.Cursor.execute = execute
        self._prepared = (PreparedRead._prepare, PreparedRead._exec)
        prepare, run = self._prepared

        def counted_prepare(read, pgconn):
            seen.append("PREPARE " + read.sql.decode())
            return prepare(read, pgconn)

        def counted_exec(read, pgconn, values):
            seen.append(read.sql.decode())
            return run(read, pgconn, values)
        PreparedRead._prepare, PreparedRead._exec = counted_prepare, counted_exec
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc):
        psycopg.Cursor.execute = self._original
        PreparedRead._prepare, PreparedRead._exec = self._prepared
        event.remove(self.engine, "commit", self._commit)


@pytest.fixture
def env(pg_url):
    # As the API runs: pooled connections pinged only after a second idle (no ping per statement).
    environment = make_env(pg_url, ping_idle_seconds=PING_IDLE_SECONDS)
    yield environment
    environment["db"].dispose()


def uuid_of(db, model, name):
    with db.uow() as uow:
        return uow.session.scalar(select(model.uuid).where(model.name == name))


def submit(env, volume="vm1-root", pool="c1-gold-2", statements=None):
    """Submit ``migrateVolume``; the job's UUID. ``statements``: counted around the request only."""
    db = env["db"]
    volume, pool = uuid_of(db, models.Volume, volume), uuid_of(db, models.StoragePool, pool)
    if statements is None:
        status, body = env["admin"].call("migrateVolume", volumeid=volume, storageid=pool, livemigrate="true")
    else:
        with statements:
            status, body = env["admin"].call("migrateVolume", volumeid=volume, storageid=pool, livemigrate="true")
    assert status == 200, body
    return body["migratevolumeresponse"]["jobid"]


def test_a_poll_is_one_statement_once_the_callers_key_is_cached(env):
    job = submit(env)
    assert env["admin"].call("queryAsyncJobResult", jobid=job)[0] == 200
    with Statements(env["db"].engine) as seen:
        status, body = env["admin"].call("queryAsyncJobResult", jobid=job)
    assert status == 200 and body["queryasyncjobresultresponse"]["jobid"] == job
    assert len(seen.statements) == 1 and seen.commits == 0, seen.statements


def test_a_submission_is_a_read_a_write_and_a_published_stamp_with_no_transaction_around_them(env):
    env["admin"].call("listZones")  # the caller's key is cached
    seen = Statements(env["db"].engine)
    job = submit(env, statements=seen)
    # The read (the volume with the pool, the facts and the two ids), the write (both
    # compare-and-sets and the three INSERTs: one statement, committed by itself), then the stamp
    # after the publish; no BEGIN and COMMIT round trips (orchestrator.intake_pg).
    assert seen.commits == 0, seen.statements
    assert len(seen.statements) == 3, seen.statements
    assert seen.statements[0].lstrip().startswith("SELECT") and seen.statements[1].lstrip().startswith("WITH")
    assert not [s for s in seen.statements if s.lstrip().upper().startswith("UPDATE EVENTS")
                or "start_event_id=" in s.replace(" ", "")], "ids are assigned without follow-up UPDATEs"
    with env["db"].uow() as uow:
        row = uow.session.scalar(select(models.AsyncJob).where(models.AsyncJob.uuid == job))
        [scheduled] = uow.session.scalars(select(models.Event).where(models.Event.job_id == row.id)).all()
        assert row.published_at is not None and env["enqueued"] == [row.id]
        assert row.start_event_id == scheduled.id == scheduled.start_id
        # The rows inserted together got the models' defaults, as separate inserts would.
        assert (row.status, row.proc_status, row.result_code, row.attempt, row.bytes_done, row.rate) == (0, 0, 0, 0, 0, 0.0)
        assert row.created is not None and row.last_updated is not None and row.phase == "queued"
        assert scheduled.uuid and scheduled.uuid != row.uuid and scheduled.created is not None
        [resource] = uow.session.scalars(select(models.JobResource).where(models.JobResource.job_id == row.id)).all()
        assert (resource.resource_type, resource.src_host_id) == ("Volume", row.host_id)
        assert (scheduled.type, scheduled.state, scheduled.user_id) == ("VOLUME.MIGRATE", "Scheduled", row.user_id)
        # The command recorded its own event: no second API.migrateVolume event from the audit.
        assert uow.session.scalar(select(models.Event).where(models.Event.type == "API.migrateVolume")) is None


def test_a_key_disabled_behind_the_api_processs_back_is_refused_once_the_cache_lapses(env, monkeypatch):
    assert env["user"].call("listZones")[0] == 200
    with env["db"].engine.begin() as conn:  # as another process would: no in-process notice
        conn.execute(text("UPDATE users SET state = 'disabled' WHERE api_key = :k"),
                     {"k": env["keys"]["user"]["apikey"]})
    now = auth.time.monotonic()
    monkeypatch.setattr(auth.time, "monotonic", lambda: now + auth.CREDENTIALS_TTL + 0.01)
    assert_envelope(*env["user"].call("listZones"), 401)


def test_a_cached_key_still_needs_its_signature(env):
    assert env["admin"].call("listZones")[0] == 200
    assert_envelope(*env["admin"].call("listZones", secret="not-the-secret"), 401)


def test_the_queue_position_of_a_poll_is_the_schedulers(env):
    db = env["db"]
    first = submit(env, "vm1-root", "c1-gold-2")
    second = submit(env, "vm2-root", "c1-gold")
    caller = admin_caller(db)
    [h1, h2] = ids(db, models.Host, "h1", "h2")
    with db.uow() as uow:  # more queued jobs, on the hosts of the two and elsewhere, some as VM moves
        for host, dest in ((h1, None), (h2, h1), (None, h2), (h2, None)):
            uow.session.add(models.AsyncJob(account_id=caller.account_id, user_id=caller.user_id,
                                            command="migrateVolume", cmd="x", params=json.dumps({}),
                                            phase=JobPhase.QUEUED, host_id=host, dest_host_id=dest))
        uow.commit()
    with db.uow() as uow:
        jobs = uow.session.scalars(select(models.AsyncJob).order_by(models.AsyncJob.id)).all()
        expected = {job.uuid: slots.queue_position(uow.session, job) for job in jobs}
    assert {first, second} <= set(expected) and max(expected.values()) > 1
    for uuid, position in expected.items():
        status, body = env["admin"].call("queryAsyncJobResult", jobid=uuid)
        assert status == 200 and body["queryasyncjobresultresponse"]["queueposition"] == position, uuid
    status, body = env["admin"].call("queryAsyncJobResult", jobid=first.upper())
    assert status == 200 and body["queryasyncjobresultresponse"]["jobid"] == first


def drop_connections(env):
    with psycopg.connect(env["db"].engine.url.render_as_string(hide_password=False).replace("+psycopg", ""),
                         autocommit=True) as admin:  # the database drops every connection of the API
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def test_a_poll_on_a_connection_the_database_dropped_is_answered_all_the_same(env):
    # The fast lane's read fails on the dead connection, which the pool replaces with every older
    # one; the lane hands the request to Flask, whose read takes a new connection.
    job = submit(env)
    assert env["admin"].call("queryAsyncJobResult", jobid=job)[0] == 200
    drop_connections(env)
    for _ in range(2):
        status, body = env["admin"].call("queryAsyncJobResult", jobid=job)
        assert status == 200 and body["queryasyncjobresultresponse"]["jobid"] == job


def test_without_the_fast_lane_a_poll_on_a_dropped_connection_fails_once_and_the_next_is_answered(env):
    app = env["app"]
    app.wsgi_app = app.wsgi_app.wsgi_app  # Flask alone (api.fast hands over to it)
    job = submit(env)
    assert env["admin"].call("queryAsyncJobResult", jobid=job)[0] == 200
    drop_connections(env)
    status, body = env["admin"].call("queryAsyncJobResult", jobid=job)
    assert_envelope(status, body, 530, "queryasyncjobresultresponse")
    status, body = env["admin"].call("queryAsyncJobResult", jobid=job)
    assert status == 200 and body["queryasyncjobresultresponse"]["jobid"] == job


def test_a_submission_whose_published_stamp_fails_is_still_accepted_and_left_for_the_sweep(env, monkeypatch):
    from orchestrator import motion

    def failing(*_args, **_kwargs):
        raise psycopg.OperationalError("the database went away after the commit")
    monkeypatch.setattr(motion, "driver_execute", failing)
    job = submit(env)
    with env["db"].uow() as uow:
        row = uow.session.scalar(select(models.AsyncJob).where(models.AsyncJob.uuid == job))
        assert row.published_at is None and env["enqueued"] == [row.id]
