"""Admission slots, queue positions and cancel on PostgreSQL, with a fake agent at the port."""
import json

import pytest
from sqlalchemy import select

from orchestrator import models, slots
from orchestrator.cancel import cancel_job
from orchestrator.config import Settings
from orchestrator.db import Database
from orchestrator.errors import InvalidParameter
from orchestrator.motion import migrate_volume
from orchestrator.runner import Runner
from tests.helpers import admin_caller, ids, volume_row

pytestmark = pytest.mark.postgres


class HangingAgent:
    """Accepts commands and reports them running until aborted (or told to succeed)."""

    def __init__(self):
        self.aborted, self.succeed = [], False

    def post_command(self, base_url, payload):
        return {"id": payload["id"], "state": "accepted"}

    def get_command(self, base_url, command_id):
        if self.succeed:
            return {"id": command_id, "state": "succeeded", "bytesDone": 1, "bytesTotal": 1, "result": {}}
        return {"id": command_id, "state": "running", "bytesDone": 1, "bytesTotal": 4, "rate": 10.0, "eta": 0.3}

    def abort_command(self, base_url, command_id):
        self.aborted.append(command_id)
        return {"id": command_id, "state": "aborted"}

    def get_volume(self, base_url, volume_id):
        return None


def settings(db, worker="w1"):
    return Settings(database_url=db.url, worker_id=worker, poll_interval=0.01, agent_url="http://a.invalid/{host}")


def submit(db, caller, volume, pool):
    jobs = []
    [vol] = ids(db, models.Volume, volume)
    [dest] = ids(db, models.StoragePool, pool)
    migrate_volume(db, jobs.append, caller, vol, dest, True, {})
    return jobs[0]


def job(db, job_id):
    with db.uow() as uow:
        row = uow.session.get(models.AsyncJob, job_id)
        uow.session.expunge(row)
        return row


def dispatch(db, job_id, worker="w1"):
    runner = Runner(db, HangingAgent(), settings(db, worker))
    assert runner.claim(job_id)
    try:
        return runner._dispatch(runner._load(job_id))
    finally:
        runner.release(job_id)


@pytest.fixture
def three_jobs(db):
    caller = admin_caller(db)
    return caller, [submit(db, caller, "vm1-root", "c1-gold-2"), submit(db, caller, "vm1-data", "c1-gold"),
                    submit(db, caller, "vm2-root", "c1-gold")]


def test_a_host_runs_at_most_its_limit_and_the_rest_wait_in_submission_order(db, three_jobs):
    _, (j1, j2, j3) = three_jobs
    assert dispatch(db, j1) and dispatch(db, j2, "w2")
    assert not dispatch(db, j3, "w3")
    assert job(db, j3).phase == "queued" and job(db, j3).deadline_at is None  # no clock running
    with db.uow() as uow:
        assert slots.queue_position(uow.session, uow.session.get(models.AsyncJob, j3)) == 1
        assert slots.running_on_host(uow.session, ids(db, models.Host, "h1")[0]) == 2


def test_a_per_host_limit_overrides_the_capability(db, three_jobs):
    _, (j1, j2, _j3) = three_jobs
    with db.uow() as uow:
        uow.session.scalar(select(models.Host).where(models.Host.name == "h1")).max_storage_migrations = 1
        uow.commit()
    assert dispatch(db, j1)
    assert not dispatch(db, j2)


def test_a_finished_job_frees_its_slot_and_wakes_the_next_refused_one(db, three_jobs):
    _, (j1, j2, j3) = three_jobs
    assert dispatch(db, j1) and dispatch(db, j2)
    assert not dispatch(db, j3)  # refused: its message is used up, it needs a wake-up
    refused = job(db, j3)
    assert refused.status_text.startswith("waiting: ") and refused.lease_owner is None
    woken = []
    agent = HangingAgent()
    agent.succeed = True
    assert Runner(db, agent, settings(db), wake=woken.append).run(j1) == "succeeded"
    assert woken == [j3]
    assert job(db, j3).status_text is None  # woken once: the next slot that frees wakes another
    assert Runner(db, agent, settings(db), wake=woken.append).run(j2) == "succeeded"
    assert woken == [j3]
    assert dispatch(db, j3)


def test_a_job_never_tried_is_not_woken_its_own_message_is_on_its_way(db, three_jobs):
    _, (j1, j2, _j3) = three_jobs
    assert dispatch(db, j1) and dispatch(db, j2)
    woken = []
    agent = HangingAgent()
    agent.succeed = True
    assert Runner(db, agent, settings(db), wake=woken.append).run(j1) == "succeeded"
    assert woken == []


def test_a_younger_job_refused_while_an_older_was_admitted_is_woken_by_that_dispatch(db, three_jobs):
    """Two workers take two jobs of one host at once; the younger is refused because the older
    is still queued. The older's dispatch leaves a slot free and wakes it (no lost slot)."""
    _, (j1, j2, _j3) = three_jobs
    younger = Runner(db, HangingAgent(), settings(db, "w2"))
    older = Runner(db, HangingAgent(), settings(db, "w1"))
    assert older.claim(j1)  # being admitted ...
    assert not dispatch(db, j2, "w2")  # ... when the younger is tried
    assert job(db, j2).status_text == "waiting: an older job waits for host h1"
    woken = []
    older.wake = woken.append
    assert older._dispatch(older._load(j1))
    assert woken == [j2]
    assert dispatch(db, j2, "w2")
    del younger


def test_waking_never_promises_more_slots_than_are_free(db, three_jobs):
    _, (j1, j2, j3) = three_jobs
    with db.uow() as uow:
        uow.session.scalar(select(models.Host).where(models.Host.name == "h1")).max_storage_migrations = 1
        uow.commit()
    assert dispatch(db, j1)
    assert not dispatch(db, j2) and not dispatch(db, j3)
    woken = []
    agent = HangingAgent()
    agent.succeed = True
    assert Runner(db, agent, settings(db), wake=woken.append).run(j1) == "succeeded"
    assert woken == [j2]  # one slot freed: the oldest refused job, not both




def test_cancelling_a_queued_job_ends_it_at_once_and_puts_the_volume_back(db, three_jobs):
    caller, (j1, j2, j3) = three_jobs
    assert dispatch(db, j1) and dispatch(db, j2)
    assert cancel_job(db, settings(db), caller, j3) == "cancelled"
    row = job(db, j3)
    assert row.status == 2 and "cancelled by" in json.loads(row.result)["errortext"]
    assert volume_row(db, "vm2-root").state == "Ready"
    # a second cancel is refused: the job has finished
    with pytest.raises(InvalidParameter, match="already finished"):
        cancel_job(db, settings(db), caller, j3)


def test_cancelling_a_dispatched_job_aborts_the_agent_and_rolls_back(db, three_jobs):
    caller, (j1, _j2, _j3) = three_jobs
    assert dispatch(db, j1)
    assert cancel_job(db, settings(db), caller, j1) == "requested"
    assert cancel_job(db, settings(db), caller, j1) == "requested"  # idempotent
    agent = HangingAgent()
    assert Runner(db, agent, settings(db)).run(j1) == "failed"
    assert agent.aborted == [job(db, j1).uuid]
    text = json.loads(job(db, j1).result)["errortext"]
    assert "cancelled by" in text
    vol = volume_row(db, "vm1-root")
    assert vol.state == "Ready" and vol.pool_id == ids(db, models.StoragePool, "c1-gold")[0]


def test_progress_is_recorded_while_the_agent_copies(db, three_jobs):
    _, (j1, _j2, _j3) = three_jobs
    assert dispatch(db, j1)
    runner = Runner(db, HangingAgent(), settings(db))
    assert runner.claim(j1)
    ours, cancel = runner.heartbeat(j1, {"state": "running", "bytesDone": 1, "bytesTotal": 4, "rate": 10.0, "eta": 0.3})
    assert ours and cancel is None
    row = job(db, j1)
    assert (row.bytes_done, row.bytes_total, row.proc_status, row.eta) == (1, 4, 25, 0.3)


def test_the_inventory_sets_a_per_host_limit(tmp_path):
    import migrations
    from orchestrator import inventory

    url = f"sqlite:///{tmp_path / 'limit.db'}"
    migrations.upgrade(url)
    text = open("tests/small_inventory.yaml").read().replace(
        "              - name: h1\n", "              - name: h1\n                max_storage_migrations: 5\n", 1)
    database = Database(url)
    with database.uow() as uow:
        inventory.load(uow.session, inventory.parse(text))
        uow.commit()
        host = uow.session.scalar(select(models.Host).where(models.Host.name == "h1"))
        assert host.max_storage_migrations == 5 and slots.host_limit(uow.session, host) == 5
        assert inventory.dump(uow.session)["zones"][0]["pods"][0]["clusters"][0]["hosts"][0]["max_storage_migrations"] == 5
    database.dispose()


def test_cancelling_a_queued_job_wakes_the_younger_job_it_kept_waiting(db, three_jobs):
    caller, (j1, j2, _j3) = three_jobs
    assert Runner(db, HangingAgent(), settings(db, "w1")).claim(j1)  # queued, being looked at
    assert not dispatch(db, j2, "w2")
    assert job(db, j2).status_text == "waiting: an older job waits for host h1"
    woken = []
    assert cancel_job(db, settings(db), caller, j1, wake=woken.append) == "cancelled"
    assert woken == [j2] and job(db, j2).status_text is None
    assert dispatch(db, j2, "w2")
