"""Crash safety on PostgreSQL: every way a worker can die leaves a job that the sweep and the
next worker finish correctly, asking the agent what really happened."""
import json
import threading
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select, update

from orchestrator import models, reconcile
from orchestrator.config import Settings
from orchestrator.errors import AgentUnreachable
from orchestrator.models import utcnow
from orchestrator.motion import migrate_volume, publish_unpublished
from orchestrator.runner import Runner
from tests.helpers import admin_caller, count, ids, volume_row

pytestmark = pytest.mark.postgres


class Agent:
    """A fake agent that keeps one record per command id, like the real one."""

    def __init__(self, polls_to_finish=3):
        self.records, self.posts, self.polls_to_finish = {}, [], polls_to_finish
        self.down = False
        self.lock = threading.Lock()

    def _check(self):
        if self.down:
            raise AgentUnreachable("connection refused")

    def post_command(self, base_url, payload):
        self._check()
        with self.lock:
            self.posts.append(payload["id"])
            rec = self.records.setdefault(payload["id"], {"id": payload["id"], "state": "running", "polls": 0})
            return dict(rec)

    def get_command(self, base_url, command_id):
        self._check()
        with self.lock:
            rec = self.records.get(command_id)
            if rec is None:
                return None
            rec["polls"] += 1
            if rec["polls"] >= self.polls_to_finish:
                rec.update(state="succeeded", bytesDone=1, bytesTotal=1, result={"volumePath": "p.vhdx"})
            return dict(rec)

    def abort_command(self, base_url, command_id):
        self._check()
        return {"id": command_id, "state": "aborted"}

    def get_volume(self, base_url, volume_id):
        self._check()
        return None


def settings(db, worker):
    return Settings(database_url=db.url, worker_id=worker, poll_interval=0.01, lease_seconds=30,
                    agent_url="http://a.invalid/{host}")


def submit(db, enqueue=None):
    jobs = []
    [vol] = ids(db, models.Volume, "vm1-root")
    [dest] = ids(db, models.StoragePool, "c1-gold-2")
    uuid = migrate_volume(db, enqueue or jobs.append, admin_caller(db), vol, dest, True, {})
    with db.uow() as uow:
        return uow.session.scalar(select(models.AsyncJob.id).where(models.AsyncJob.uuid == uuid))


def expire_lease(db, job_id):
    """What a worker killed with SIGKILL leaves: its lease, running out."""
    with db.uow() as uow:
        uow.session.execute(update(models.AsyncJob).where(models.AsyncJob.id == job_id).values(
            lease_expires_at=utcnow() - timedelta(seconds=1), published_at=utcnow() - timedelta(minutes=1)))
        uow.commit()


def job(db, job_id):
    with db.uow() as uow:
        row = uow.session.get(models.AsyncJob, job_id)
        uow.session.expunge(row)
        return row


def assert_moved(db):
    vol = volume_row(db, "vm1-root")
    assert (vol.state, vol.pool_id) == ("Ready", ids(db, models.StoragePool, "c1-gold-2")[0])


def test_a_crash_between_commit_and_publish_is_published_by_the_sweep(db):
    def broker_down(_job_id):
        raise ConnectionError("redis is down")

    job_id = submit(db, broker_down)
    assert job(db, job_id).published_at is None and job(db, job_id).status == 0
    woken = []
    assert publish_unpublished(db, woken.append, older_than_s=0) == 1
    assert woken == [job_id]
    assert Runner(db, Agent(), settings(db, "w")).run(job_id) == "succeeded"
    assert_moved(db)


def test_a_worker_killed_after_dispatch_is_resumed_with_the_same_command(db):
    job_id = submit(db)
    agent = Agent(polls_to_finish=1000)
    first = Runner(db, agent, settings(db, "dead"))
    assert first.claim(job_id)
    plan = first._load(job_id)
    assert first._dispatch(plan)
    agent.post_command(plan.agent_url, plan.command)  # sent, then the worker died
    expire_lease(db, job_id)
    woken = []
    assert reconcile.wake_stranded(db, woken.append, quiet_s=0) == 1 and woken == [job_id]
    agent.polls_to_finish = 2
    assert Runner(db, agent, settings(db, "next")).run(job_id) == "succeeded"
    assert set(agent.posts) == {plan.command["id"]} and len(agent.records) == 1
    assert_moved(db)


def test_a_worker_killed_after_the_agent_succeeded_finishes_on_resume(db):
    job_id = submit(db)
    agent = Agent(polls_to_finish=1)
    first = Runner(db, agent, settings(db, "dead"))
    assert first.claim(job_id)
    plan = first._load(job_id)
    first._dispatch(plan)
    agent.post_command(plan.agent_url, plan.command)
    assert agent.get_command(plan.agent_url, plan.job_uuid)["state"] == "succeeded"  # then it died
    expire_lease(db, job_id)
    assert Runner(db, agent, settings(db, "next")).run(job_id) == "succeeded"
    assert_moved(db)
    assert job(db, job_id).status == 1


def test_the_same_wake_up_delivered_twice_at_once_runs_one_copy(db):
    job_id = submit(db)
    agent = Agent(polls_to_finish=5)
    barrier, outcomes = threading.Barrier(2), []

    def run(worker):
        barrier.wait()
        outcomes.append(Runner(db, agent, settings(db, worker)).run(job_id))

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["skipped", "succeeded"]
    assert len(agent.posts) == 1


def test_an_agent_unreachable_past_the_give_up_time_fails_with_everything_on_the_source(db):
    with db.uow() as uow:
        uow.session.get(models.Configuration, "wait").value = "1"
        uow.session.get(models.Configuration, "agent.unreachable.giveup").value = "1"
        uow.commit()
    job_id = submit(db)
    agent = Agent()
    agent.down = True
    assert Runner(db, agent, settings(db, "w")).run(job_id) == "failed"
    row = job(db, job_id)
    result = json.loads(row.result)
    assert row.result_code == 534 and "has not answered since" in result["errortext"]
    vol = volume_row(db, "vm1-root")
    assert (vol.state, vol.pool_id) == ("Ready", ids(db, models.StoragePool, "c1-gold")[0])


def test_a_dropped_database_connection_mid_job_does_not_lose_the_job(db, pg_url):
    job_id = submit(db)
    agent = Agent(polls_to_finish=60)
    outcome = []

    def run():
        try:
            outcome.append(Runner(db, agent, settings(db, "w")).run(job_id))
        except Exception as exc:  # the worker died with its connection, as a process would
            outcome.append(f"died: {exc.__class__.__name__}")

    runner_thread = threading.Thread(target=run)
    runner_thread.start()
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres",
                         autocommit=True) as admin:
        for _ in range(3):
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    runner_thread.join(timeout=120)
    if outcome != ["succeeded"]:  # the runner may have died with its connection: the next one finishes
        expire_lease(db, job_id)
        assert Runner(db, agent, settings(db, "next")).run(job_id) == "succeeded"
    assert_moved(db)


class Truth:
    def __init__(self, volume_pool=None, vm_host=None):
        self.volume_pool, self.vm_host = volume_pool, vm_host

    def get_volume(self, base_url, volume_id):
        return {"id": volume_id, "locations": [{"pool": self.volume_pool}] if self.volume_pool else []}

    def get_vm(self, base_url, name):
        return {"name": name} if self.vm_host and base_url.endswith(self.vm_host) else None


def test_an_orphaned_migrating_volume_is_recorded_where_the_agent_has_its_data(db):
    with db.uow() as uow:
        vol = uow.session.scalar(select(models.Volume).where(models.Volume.name == "vm1-root"))
        vol.state = "Migrating"  # a hand edit, or a bug: no job owns it
        dest = uow.session.scalar(select(models.StoragePool).where(models.StoragePool.name == "c1-gold-2"))
        dest_uuid = dest.uuid
        uow.commit()
    admin_caller(db)
    repairs = reconcile.repair_orphans(db, Truth(volume_pool=dest_uuid), settings(db, "beat"))
    assert len(repairs) == 1 and "c1-gold-2" in repairs[0]
    assert_moved(db)
    with db.uow() as uow:
        assert uow.session.scalar(select(models.Event).where(models.Event.type == "VOLUME.RECONCILE"))


def test_orphans_are_repaired_one_by_one_so_one_that_changed_meanwhile_leaves_the_others_repaired(db):
    """Given two orphaned Migrating volumes, when the first one's row changes while the agent is
    asked about it, then its repair is dropped and the second one is still repaired (each orphan
    is its own unit of work; a repair moves at most one volume between pools)."""
    from sqlalchemy import text

    with db.uow() as uow:
        vols = list(uow.session.scalars(select(models.Volume).where(models.Volume.name.in_(["vm1-root", "vm2-root"]))
                                        .order_by(models.Volume.id)))
        assert len(vols) == 2
        for vol in vols:
            vol.state = "Migrating"
        first, second = vols[0].uuid, vols[1].name
        uow.commit()
    admin_caller(db)

    class ChangingTruth(Truth):
        def get_volume(self, base_url, volume_id):
            if volume_id == first:  # someone else repairs it by hand meanwhile
                with db.engine.begin() as other:
                    other.execute(text("UPDATE volumes SET state = 'Ready' WHERE uuid = :u"), {"u": first})
            return super().get_volume(base_url, volume_id)
    repairs = reconcile.repair_orphans(db, ChangingTruth(), settings(db, "beat"))
    assert len(repairs) == 1 and second in repairs[0]
    assert volume_row(db, second).state == "Ready"
    with db.uow() as uow:
        assert len(uow.session.scalars(select(models.Event).where(models.Event.type == "VOLUME.RECONCILE")).all()) == 1


def test_an_orphaned_migrating_vm_is_recorded_on_the_host_that_runs_it(db):
    with db.uow() as uow:
        vm = uow.session.scalar(select(models.VirtualMachine).where(models.VirtualMachine.name == "vm2"))
        vm.state = "Migrating"
        vm.last_host_id = ids(db, models.Host, "h2")[0]
        uow.commit()
    admin_caller(db)
    assert len(reconcile.repair_orphans(db, Truth(vm_host="h2"), settings(db, "beat"))) == 1
    with db.uow() as uow:
        vm = uow.session.scalar(select(models.VirtualMachine).where(models.VirtualMachine.name == "vm2"))
        assert (vm.state, vm.host_id) == ("Running", ids(db, models.Host, "h2")[0])
    assert count(db, models.AsyncJob) == 0


def test_the_sweep_leaves_a_job_never_tried_alone_while_the_broker_still_holds_messages(db):
    job_id = submit(db)
    with db.uow() as uow:
        uow.session.execute(update(models.AsyncJob).where(models.AsyncJob.id == job_id)
                            .values(published_at=utcnow() - timedelta(minutes=1)))
        uow.commit()
    woken = []
    # its message is most likely among the 40 waiting: publishing it again would duplicate it
    assert reconcile.wake_stranded(db, woken.append, quiet_s=0, backlog=40) == 0
    # the queue is empty (or its length unknown) and the job is still pending: its message was lost
    assert reconcile.wake_stranded(db, woken.append, quiet_s=0, backlog=0) == 1 and woken == [job_id]
    # a job that was tried (refused, or its worker died) has no message left: woken despite a backlog
    expire_lease(db, job_id)
    with db.uow() as uow:
        uow.session.execute(update(models.AsyncJob).where(models.AsyncJob.id == job_id).values(attempt=1))
        uow.commit()
    assert reconcile.wake_stranded(db, woken.append, quiet_s=0, backlog=40) == 1 and woken == [job_id, job_id]
