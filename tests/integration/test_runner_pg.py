"""The runner on PostgreSQL with a fake agent at the port: finish, roll back, deadline, duplicates."""
import json

import pytest
from sqlalchemy import select

from orchestrator import models
from orchestrator.config import Settings
from orchestrator.errors import AgentUnreachable
from orchestrator.motion import migrate_volume
from orchestrator.runner import Runner
from tests.helpers import admin_caller, ids, volume_row

pytestmark = pytest.mark.postgres


class FakeAgent:
    """Answers like a host agent would; ``outcome`` says how the command ends."""

    def __init__(self, outcome="succeeded", polls_before_end=2):
        self.outcome = outcome
        self.polls_before_end = polls_before_end
        self.posted, self.aborted, self.polls = [], [], 0

    def post_command(self, base_url, payload):
        self.posted.append((base_url, payload))
        return {"id": payload["id"], "state": "accepted", "bytesDone": 0, "bytesTotal": 100}

    def get_command(self, base_url, command_id):
        self.polls += 1
        if self.outcome == "hang" or self.polls < self.polls_before_end:
            return {"id": command_id, "state": "running", "bytesDone": 50, "bytesTotal": 100}
        if self.outcome == "failed":
            return {"id": command_id, "state": "failed", "error": "disk on fire"}
        return {"id": command_id, "state": "succeeded", "bytesDone": 100, "bytesTotal": 100,
                "result": {"volumePath": "moved.vhdx"}}

    def get_volume(self, base_url, volume_id):
        return None

    def abort_command(self, base_url, command_id):
        self.aborted.append(command_id)
        return {"id": command_id, "state": "aborted"}


def settings(db):
    return Settings(database_url=db.url, worker_id="test-worker", poll_interval=0.01,
                    agent_url="http://agent.invalid/hosts/{host}")


def submit(db, volume="vm1-root", pool="c1-gold-2"):
    jobs = []
    [vol] = ids(db, models.Volume, volume)
    [dest] = ids(db, models.StoragePool, pool)
    job_uuid = migrate_volume(db, jobs.append, admin_caller(db), vol, dest, True, {})
    return jobs[0], job_uuid


def job_row(db, job_id):
    with db.uow() as uow:
        job = uow.session.get(models.AsyncJob, job_id)
        uow.session.expunge(job)
        return job


def event_states(db, job_id):
    with db.uow() as uow:
        return [(e.state, e.level) for e in uow.session.scalars(
            select(models.Event).where(models.Event.job_id == job_id).order_by(models.Event.id))]


def test_a_successful_command_moves_the_volume_and_completes_the_job(db):
    job_id, job_uuid = submit(db)
    agent = FakeAgent()
    assert Runner(db, agent, settings(db)).run(job_id) == "succeeded"
    base_url, command = agent.posted[0]
    assert base_url == "http://agent.invalid/hosts/h1"
    assert command["id"] == job_uuid and command["type"] == "MigrateVolumeCommand"
    vol = volume_row(db, "vm1-root")
    [gold, gold2] = ids(db, models.StoragePool, "c1-gold", "c1-gold-2")
    assert (vol.state, vol.pool_id, vol.last_pool_id, vol.path) == ("Ready", gold2, gold, "moved.vhdx")
    job = job_row(db, job_id)
    assert (job.status, job.result_code, job.phase, job.lease_owner) == (1, 0, "done", None)
    assert json.loads(job.result)["volume"]["storage"] == "c1-gold-2"
    assert event_states(db, job_id) == [("Scheduled", "INFO"), ("Started", "INFO"), ("Completed", "INFO")]


def test_an_agent_failure_rolls_the_volume_back_to_its_source_pool(db):
    job_id, _ = submit(db)
    assert Runner(db, FakeAgent("failed"), settings(db)).run(job_id) == "failed"
    vol = volume_row(db, "vm1-root")
    [gold] = ids(db, models.StoragePool, "c1-gold")
    assert (vol.state, vol.pool_id, vol.last_pool_id) == ("Ready", gold, None)
    job = job_row(db, job_id)
    result = json.loads(job.result)
    assert (job.status, job.result_code, result["errorcode"]) == (2, 530, 530)
    assert "disk on fire" in result["errortext"] and "h1" in result["errortext"]
    assert event_states(db, job_id)[-1] == ("Completed", "ERROR")


def test_past_wait_times_two_the_command_is_aborted_and_the_error_names_the_timeout(db):
    with db.uow() as uow:
        uow.session.get(models.Configuration, "wait").value = "1"
        uow.commit()
    job_id, job_uuid = submit(db)
    agent = FakeAgent("hang")
    assert Runner(db, agent, settings(db)).run(job_id) == "failed"
    assert agent.aborted == [job_uuid]
    text = json.loads(job_row(db, job_id).result)["errortext"]
    assert "wait*2 = 2 s" in text
    assert volume_row(db, "vm1-root").state == "Ready"


def test_a_duplicate_wake_up_for_a_finished_job_does_nothing(db):
    job_id, _ = submit(db)
    agent = FakeAgent()
    runner = Runner(db, agent, settings(db))
    assert runner.run(job_id) == "succeeded"
    assert runner.run(job_id) == "skipped"
    assert len(agent.posted) == 1


def test_a_job_leased_by_a_live_worker_is_not_taken_by_another(db):
    job_id, _ = submit(db)
    first = Runner(db, FakeAgent(), settings(db))
    assert first.claim(job_id)
    other = Runner(db, FakeAgent(), settings(db).with_(worker_id="other"))
    assert other.run(job_id) == "skipped"


class FlakyAgent(FakeAgent):
    """Unreachable for the first calls, then fine: the runner keeps trying within the deadline."""

    def __init__(self):
        super().__init__()
        self.failures = 3

    def post_command(self, base_url, payload):
        if self.failures:
            self.failures -= 1
            raise AgentUnreachable("connection refused")
        return super().post_command(base_url, payload)


def test_an_agent_that_is_briefly_unreachable_does_not_fail_the_job(db):
    job_id, _ = submit(db)
    assert Runner(db, FlakyAgent(), settings(db)).run(job_id) == "succeeded"


def test_a_command_that_ends_at_once_is_seen_at_a_quick_first_look_not_after_the_poll_interval(db):
    import time

    job_id, _ = submit(db)
    agent = FakeAgent(polls_before_end=1)  # accepted on POST, succeeded at the first GET
    started = time.monotonic()
    assert Runner(db, agent, settings(db).with_(poll_interval=2.0)).run(job_id) == "succeeded"
    assert time.monotonic() - started < 1.0 and agent.polls == 1


def test_an_agent_that_answers_the_post_with_the_outcome_is_not_polled(db):
    class AnswersWithOutcome(FakeAgent):
        def post_command(self, base_url, payload):
            super().post_command(base_url, payload)
            return {"id": payload["id"], "state": "succeeded", "bytesDone": 100, "bytesTotal": 100,
                    "result": {"volumePath": "moved.vhdx"}}

    job_id, _ = submit(db)
    agent = AnswersWithOutcome()
    assert Runner(db, agent, settings(db)).run(job_id) == "succeeded"
    assert agent.polls == 0 and job_row(db, job_id).status == 1
    assert job_row(db, job_id).lease_owner is None


class StolenLeaseAgent(FakeAgent):
    """While the command runs, another worker takes the job over (our lease ran out meanwhile)."""

    def __init__(self, db):
        super().__init__(polls_before_end=3)
        self.db = db

    def get_command(self, base_url, command_id):
        if self.polls == 1:
            with self.db.uow() as uow:
                job = uow.session.scalar(select(models.AsyncJob).where(models.AsyncJob.uuid == command_id))
                job.lease_owner = "the-new-owner"
                uow.commit()
        return super().get_command(base_url, command_id)


def test_a_worker_that_lost_its_lease_records_no_outcome_and_says_so(db):
    job_id, _ = submit(db)
    runner = Runner(db, StolenLeaseAgent(db), settings(db).with_(poll_interval=10.0))
    assert runner.run(job_id) == "lease-lost"
    job = job_row(db, job_id)
    assert (job.status, job.lease_owner) == (0, "the-new-owner")
    vol = volume_row(db, "vm1-root")
    [gold] = ids(db, models.StoragePool, "c1-gold")
    assert (vol.state, vol.pool_id) == ("Migrating", gold)
