"""A Celery worker with the threads pool (``motion worker --pool threads``) on PostgreSQL and
Redis, with a fake agent that holds every command until the test lets it go: one process holds
several jobs in flight at once, each under its own lease, and the per-host limit, the refusal of
younger jobs and the submission order hold as with one job per process."""
import threading

import pytest
from celery import _state as celery_state

import workers.app
from orchestrator import models
from orchestrator.config import Settings
from orchestrator.motion import migrate_volume
from tests.conftest import wait_until
from tests.helpers import admin_caller, ids
from workers.app import celery_enqueuer, create_celery

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


class Gate:
    """Shared by every thread's fake agent: commands wait in ``post_command`` until ``open``."""

    def __init__(self):
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.inside, self.peak, self.posted = 0, 0, []


class GatedAgent:
    def __init__(self, gate: Gate):
        self.gate = gate

    def post_command(self, base_url, payload):
        with self.gate.lock:
            self.gate.inside += 1
            self.gate.peak = max(self.gate.peak, self.gate.inside)
            self.gate.posted.append(payload["id"])
        try:
            self.gate.open.wait(60)
        finally:
            with self.gate.lock:
                self.gate.inside -= 1
        return {"id": payload["id"], "state": "succeeded", "bytesDone": 100, "bytesTotal": 100,
                "result": {"volumePath": "moved.vhdx"}}

    def get_command(self, base_url, command_id):
        return {"id": command_id, "state": "succeeded", "bytesDone": 100, "bytesTotal": 100,
                "result": {"volumePath": "moved.vhdx"}}

    def get_volume(self, base_url, volume_id):
        return None

    def abort_command(self, base_url, command_id):
        return {"id": command_id, "state": "aborted"}


@pytest.fixture
def gate(monkeypatch):
    g = Gate()
    monkeypatch.setattr(workers.app, "AgentClient", lambda *a, **kw: GatedAgent(g))
    yield g
    g.open.set()


@pytest.fixture
def threads_worker(db, redis_url, gate):
    """A Celery worker with the threads pool (4 jobs at once) in this process, like ``motion up``'s."""
    settings = Settings(database_url=db.url, broker_url=redis_url, worker_id="t", poll_interval=0.01,
                        agent_url="http://agent.invalid/hosts/{host}")
    app = create_celery(settings)
    # An in-process WorkController (unlike ``celery worker``) looks tasks up in the default app:
    # make it this one for the test (another test's worker may have left its own as default).
    previous = celery_state.default_app
    app.set_default()
    worker = app.WorkController(pool_cls="threads", concurrency=4, loglevel="WARNING", without_heartbeat=True,
                                without_mingle=True, without_gossip=True)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        yield app, celery_enqueuer(settings, app)
    finally:
        gate.open.set()
        stopper = threading.Thread(target=worker.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=15)
        celery_state.set_default_app(previous)
        app.motion_runtime.db.dispose()


def submit(db, enqueue, caller, volume, pool):
    [vol] = ids(db, models.Volume, volume)
    [dest] = ids(db, models.StoragePool, pool)
    return migrate_volume(db, enqueue, caller, vol, dest, True, {})


def rows(db, uuids):
    with db.uow() as uow:
        found = {j.uuid: j for j in uow.session.query(models.AsyncJob).filter(models.AsyncJob.uuid.in_(uuids))}
        for j in found.values():
            uow.session.expunge(j)
        return [found[u] for u in uuids]


def test_one_threads_worker_holds_two_jobs_of_a_host_at_once_and_refuses_the_third(db, threads_worker, gate):
    app, enqueue = threads_worker
    caller = admin_caller(db)
    # Given three migrations on host h1 (limit 2), submitted in this order to a worker process
    # that can run four jobs at once
    uuids = [submit(db, enqueue, caller, "vm1-root", "c1-gold-2"), submit(db, enqueue, caller, "vm1-data", "c1-gold"),
             submit(db, enqueue, caller, "vm2-root", "c1-gold")]
    # When the agent holds every command it gets
    wait_until(lambda: gate.inside == 2, timeout=30, interval=0.02, what="two commands at the agent at once")
    third = wait_until(lambda: (lambda j: j if (j.status_text or "").startswith("waiting") else None)(
        rows(db, uuids)[2]), timeout=30, interval=0.02, what="the third job refused")
    # Then the two oldest are in flight in this one process, each under its own lease owner ...
    first, second = rows(db, uuids)[:2]
    assert (first.phase, second.phase) == ("dispatched", "dispatched")
    assert first.lease_owner != second.lease_owner
    assert {o.rsplit("-", 1)[0] for o in (first.lease_owner, second.lease_owner)} == {
        f"t/{__import__('os').getpid()}"}
    # ... and the third waits, queued, nothing sent for it, its lease released
    assert (third.phase, third.lease_owner) == ("queued", None) and "h1" in third.status_text
    assert sorted(gate.posted) == sorted(uuids[:2])
    # When the agent lets the commands end
    gate.open.set()
    wait_until(lambda: all(j.status == 1 for j in rows(db, uuids)), timeout=60, interval=0.05,
               what="all three jobs to succeed")
    # Then the third was woken and ran after them, never above the limit, in submission order
    assert gate.posted[2] == uuids[2] and gate.peak == 2
    done = rows(db, uuids)
    assert [j.uuid for j in sorted(done, key=lambda j: j.dispatched_at)] == uuids
    assert all(j.lease_owner is None for j in done)
