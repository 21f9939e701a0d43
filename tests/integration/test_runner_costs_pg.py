"""What one migration costs the worker in database work, on PostgreSQL, and that the reads folded
into fewer statements still see the values of the moment: an instant volume job is two
transactions of 12 statements in all, with one UPDATE of the job in each (the claim and the
dispatch are one statement); the global values and the capability limits are read inside other
statements, yet a change to them is seen by the next job.
"""
from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import event

from orchestrator import models
from orchestrator.jobkinds import load_plan
from orchestrator.runner import Runner
from tests.integration.test_runner_pg import settings, submit

pytestmark = pytest.mark.postgres


class InstantAgent:
    """An agent whose commands end at once (as the zero-copy agent's do with ``?wait=``)."""

    def __init__(self):
        self.posted = []

    def post_command(self, base_url, payload):
        self.posted.append(payload)
        return {"id": payload["id"], "state": "succeeded", "bytesDone": 100, "bytesTotal": 100,
                "result": {"volumePath": "moved.vhdx"}}

    def get_command(self, base_url, command_id):
        raise AssertionError("an instant command needs no poll")


class Statements:
    """Statements sent by psycopg cursors (SQLAlchemy's and ``db.fast_execute``'s, which skips
    SQLAlchemy's events) and commits on an engine while the block runs."""

    def __init__(self, engine):
        self.engine, self.statements, self.commits = engine, [], 0

    def _commit(self, _conn):
        self.commits += 1

    def __enter__(self):
        execute, seen = psycopg.Cursor.execute, self.statements

        def counted(cursor, query, *args, **kwargs):
            text = " ".join(str(query).split())
            if text not in ("", ";"):  # the pool's ping of a connection idle for a while
                seen.append(text)
            return execute(cursor, query, *args, **kwargs)
        self._execute, psycopg.Cursor.execute = execute, counted
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc):
        psycopg.Cursor.execute = self._execute
        event.remove(self.engine, "commit", self._commit)


def set_config(db, name, value):
    with db.uow() as uow:
        uow.session.get(models.Configuration, name).value = value
        uow.commit()


def test_an_instant_volume_job_is_two_transactions_of_twelve_statements(db):
    job_id, _ = submit(db)
    runner = Runner(db, InstantAgent(), settings(db))
    with Statements(db.engine) as seen:
        assert runner.run(job_id) == "succeeded"
    assert seen.commits == 2, seen.statements
    assert 10 <= len(seen.statements) <= 12, "\n".join(seen.statements)
    # the claim and the dispatch are one UPDATE; the outcome is the other
    assert sum(s.startswith("UPDATE async_jobs") for s in seen.statements) == 2, "\n".join(seen.statements)
    # the global values and the capability limit come inside other statements
    assert not any(s.startswith("SELECT configuration.") for s in seen.statements)
    assert not any(s.startswith("SELECT hypervisor_capabilities.") for s in seen.statements)


def test_a_changed_wait_is_seen_by_the_next_job(db):
    set_config(db, "wait", "7")
    job_id, _ = submit(db)
    agent = InstantAgent()
    assert Runner(db, agent, settings(db)).run(job_id) == "succeeded"
    assert agent.posted[0]["wait"] == 7


def test_a_lowered_pool_cap_is_seen_by_the_next_job(db):
    set_config(db, "pool.storage.migration.limit", "0")
    job_id, _ = submit(db)
    agent = InstantAgent()
    assert Runner(db, agent, settings(db)).run(job_id) == "queued"
    assert agent.posted == []
    with db.uow() as uow:
        text = uow.session.get(models.AsyncJob, job_id).status_text
    assert text.startswith("waiting: pool ") and "has 0 migrations running (its cap)" in text


def test_a_lowered_capability_limit_is_seen_by_the_next_job(db):
    with db.uow() as uow:
        for capability in uow.session.query(models.HypervisorCapability):
            capability.max_storage_migrations = 0
        for host in uow.session.query(models.Host):
            host.max_storage_migrations = None
        uow.commit()
    job_id, _ = submit(db)
    assert Runner(db, InstantAgent(), settings(db)).run(job_id) == "queued"
    with db.uow() as uow:
        text = uow.session.get(models.AsyncJob, job_id).status_text
    assert "runs 0 storage migrations already (its limit)" in text


def lease(db, job_id):
    with db.uow() as uow:
        row = uow.session.get(models.AsyncJob, job_id)
        return row.phase, row.lease_owner, row.attempt


def test_the_one_statement_dispatch_leaves_a_job_held_by_a_live_lease_alone(db):
    job_id, _ = submit(db)
    other = Runner(db, InstantAgent(), settings(db))
    other.me = "other/1"
    assert other.claim(job_id)
    runner = Runner(db, InstantAgent(), settings(db))
    with db.uow() as uow:
        plan = load_plan(uow.session, uow.session.get(models.AsyncJob, job_id), runner.settings)
        assert runner._claim_dispatch(uow.session, plan) is False
        uow.commit()
    assert lease(db, job_id) == ("queued", "other/1", 1)
    assert runner.run(job_id) == "skipped"


def test_the_one_statement_dispatch_leaves_a_job_no_longer_queued_to_the_plain_claim(db):
    """A job dispatched by a worker whose lease then ran out is not dispatched again: the next
    worker's claim takes it over in its phase and watches its command."""
    job_id, _ = submit(db)
    first = Runner(db, InstantAgent(), settings(db))
    first.me = "first/1"
    assert first.claim(job_id)
    assert first._dispatch(first._load(job_id))
    with db.uow() as uow:  # the first worker died: its lease ran out
        uow.session.get(models.AsyncJob, job_id).lease_expires_at = models.utcnow() - timedelta(seconds=1)
        uow.commit()
    runner = Runner(db, InstantAgent(), settings(db))
    with db.uow() as uow:
        plan = load_plan(uow.session, uow.session.get(models.AsyncJob, job_id), runner.settings)
        assert runner._claim_dispatch(uow.session, plan) is False
    assert lease(db, job_id) == ("dispatched", "first/1", 1)
    assert runner.run(job_id) == "succeeded"
    assert lease(db, job_id) == ("done", None, 2)
