"""The reconciler against the agents' truth (orchestrator.truth), on PostgreSQL with real host
agents over HTTP (AgentServer in this process) and real volume files.

Given the small inventory provisioned on the agents, when a volume's file or a VM moves behind
the database's back, the sweep records the agents' truth with an event - unless the agent does
not answer, or a job owns (or takes) the object, in which case nothing changes."""
import os
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from agent.serve import AgentServer
from orchestrator import models, reconcile, truth
from orchestrator.config import Settings
from orchestrator.db import Database
from orchestrator.motion import migrate_volume
from orchestrator.provision import provision_volumes
from tests.conftest import free_port
from tests.helpers import admin_caller, ids, load_small, volume_row
from workers.agent_client import AgentClient

pytestmark = pytest.mark.postgres

HOSTS = ["h1", "h2", "h3", "h-old"]


@pytest.fixture
def db(pg_url):
    database = Database(pg_url)
    load_small(database)
    admin_caller(database)  # events name a user
    yield database
    database.dispose()


@pytest.fixture
def agents(tmp_path):
    server = AgentServer(HOSTS, tmp_path / "agents").start()
    server.data_root = tmp_path / "agents"
    yield server
    server.shutdown()


def settings_for(db, agent_url: str) -> Settings:
    return Settings(database_url=db.url, worker_id="beat", agent_url=agent_url + "/hosts/{host}",
                    agent_timeout=2.0)


@pytest.fixture
def conf(db, agents):
    conf = settings_for(db, agents.url)
    provision_volumes(db, AgentClient(), conf)
    return conf


def pool_dir(agents, db, pool_name: str) -> Path:
    with db.uow() as uow:
        path = uow.session.scalar(select(models.StoragePool.path).where(models.StoragePool.name == pool_name))
    return Path(agents.data_root) / path.lstrip("/")


def move_file_behind_the_database(agents, db, volume: str, src: str, dst: str) -> None:
    vol = volume_row(db, volume)
    target = pool_dir(agents, db, dst)
    target.mkdir(parents=True, exist_ok=True)
    os.rename(pool_dir(agents, db, src) / vol.path, target / vol.path)


def reconcile_events(db) -> list[tuple[str, str]]:
    """(type, description) of every reconciler event."""
    with db.uow() as uow:
        return [tuple(row) for row in uow.session.execute(
            select(models.Event.type, models.Event.description).where(models.Event.type.like("%.RECONCILE")))]


def pool_of(db, volume: str) -> tuple[int, int | None]:
    vol = volume_row(db, volume)
    return vol.pool_id, vol.last_pool_id


def test_a_ready_volume_whose_file_moved_is_recorded_where_the_agent_finds_it(db, agents, conf):
    # Given vm2-root recorded Ready on c1-gold-2, and its file moved to c1-gold behind our back
    move_file_behind_the_database(agents, db, "vm2-root", "c1-gold-2", "c1-gold")
    # When the scheduler sweeps (the first sweep of a process runs the truth check at once)
    result = reconcile.sweep(db, lambda job_id: None, AgentClient(), conf)
    # Then the volume is recorded on c1-gold, c1-gold-2 as its last pool, with one event
    gold, gold2 = ids(db, models.StoragePool, "c1-gold", "c1-gold-2")
    assert result["repaired"] == 1
    assert pool_of(db, "vm2-root") == (gold, gold2)
    assert volume_row(db, "vm2-root").state == "Ready"
    [(kind, text)] = reconcile_events(db)
    assert kind == "VOLUME.RECONCILE" and "vm2-root" in text and "c1-gold" in text
    # And a second run finds nothing more to repair: every other object agreed all along
    again = truth.reconcile_truth(db, AgentClient(), conf)
    assert again.repairs == [] and again.skipped == []
    assert again.volumes_checked >= 5 and again.vms_checked >= 3


def test_a_running_vm_that_another_host_runs_is_recorded_on_that_host(db, agents, conf):
    # Given vm2 recorded on h1, but the agents say h2 runs it (and h1 does not)
    h1, h2 = agents.base_url("h1"), agents.base_url("h2")
    vm = requests.get(f"{h1}/vms/{_instance(db, 'vm2')}", timeout=10).json()
    requests.delete(f"{h1}/vms/{vm['name']}", timeout=10).raise_for_status()
    volumes = [{"id": v["id"], "path": v["path"], "pool": _pool_to(db, v["pool"])} for v in vm["volumes"]]
    requests.post(f"{h2}/vms", json={"name": vm["name"], "uuid": vm["uuid"], "volumes": volumes},
                  timeout=10).raise_for_status()
    # When the truth reconciler runs
    out = truth.reconcile_truth(db, AgentClient(), conf)
    # Then vm2 is recorded on h2, h1 as its last host, with one event; its volume stays put
    [host1, host2] = ids(db, models.Host, "h1", "h2")
    with db.uow() as uow:
        row = uow.session.scalar(select(models.VirtualMachine).where(models.VirtualMachine.name == "vm2"))
        assert (row.state, row.host_id, row.last_host_id) == ("Running", host2, host1)
    assert len(out.repairs) == 1 and [k for k, _ in reconcile_events(db)] == ["VM.RECONCILE"]
    assert truth.reconcile_truth(db, AgentClient(), conf).repairs == []


def test_nothing_changes_when_the_agent_does_not_answer(db, agents, conf):
    # Given a moved file, but the agents are unreachable (nothing listens on their port)
    move_file_behind_the_database(agents, db, "vm2-root", "c1-gold-2", "c1-gold")
    before = pool_of(db, "vm2-root")
    silent = settings_for(db, f"http://127.0.0.1:{free_port()}")
    # When the truth reconciler runs
    out = truth.reconcile_truth(db, AgentClient(timeout=2.0), silent)
    # Then nothing is repaired and no event is recorded
    assert out.repairs == [] and reconcile_events(db) == []
    assert pool_of(db, "vm2-root") == before


def test_nothing_changes_for_a_volume_a_live_job_owns(db, agents, conf):
    # Given a moved file, and a migration of that volume accepted (pending, not run)
    move_file_behind_the_database(agents, db, "vm2-root", "c1-gold-2", "c1-gold")
    before = pool_of(db, "vm2-root")
    [vol] = ids(db, models.Volume, "vm2-root")
    [dest] = ids(db, models.StoragePool, "c1-gold")
    migrate_volume(db, lambda job_id: None, admin_caller(db), vol, dest, True, {})
    # When the truth reconciler and the whole sweep run
    out = truth.reconcile_truth(db, AgentClient(), conf)
    reconcile.sweep(db, lambda job_id: None, AgentClient(), conf)
    # Then the volume stays Migrating where it was recorded; no repair, no event
    assert out.repairs == [] and reconcile_events(db) == []
    assert pool_of(db, "vm2-root") == before and volume_row(db, "vm2-root").state == "Migrating"


def test_a_job_that_takes_the_volume_during_the_check_wins(db, agents, conf):
    # Given a moved file, and an agent client through which, between the agent's first and
    # second answer, a migration of that volume is accepted (a live job takes it)
    move_file_behind_the_database(agents, db, "vm2-root", "c1-gold-2", "c1-gold")
    before = pool_of(db, "vm2-root")
    vol_row = volume_row(db, "vm2-root")
    [dest] = ids(db, models.StoragePool, "c1-gold")
    caller = admin_caller(db)

    class Racing(AgentClient):
        asked = 0

        def get_volume(self, base_url, volume_id):
            if volume_id == vol_row.uuid:
                Racing.asked += 1
                if Racing.asked == 2:
                    migrate_volume(db, lambda job_id: None, caller, vol_row.id, dest, True, {})
            return super().get_volume(base_url, volume_id)

    # When the truth reconciler runs
    out = truth.reconcile_truth(db, Racing(), conf)
    # Then the job keeps the volume: no repair, no event, recorded where it was
    assert Racing.asked == 2
    assert out.repairs == [] and reconcile_events(db) == []
    assert any("changed in the database meanwhile" in s for s in out.skipped)
    assert pool_of(db, "vm2-root") == before and volume_row(db, "vm2-root").state == "Migrating"


def test_a_volume_whose_job_ended_a_moment_ago_is_left_to_that_job(db, agents, conf):
    # Given a moved file and a job that owned the volume and ended just now
    move_file_behind_the_database(agents, db, "vm2-root", "c1-gold-2", "c1-gold")
    before = pool_of(db, "vm2-root")
    [vol] = ids(db, models.Volume, "vm2-root")
    migrate_volume(db, lambda job_id: None, admin_caller(db), vol, ids(db, models.StoragePool, "c1-gold")[0],
                   True, {})
    with db.uow() as uow:
        job = uow.session.scalar(select(models.AsyncJob))
        job.status, job.phase, job.completed_at = 2, "done", models.utcnow()
        uow.session.get(models.Volume, vol).state = "Ready"
        uow.commit()
    # When the truth reconciler runs
    out = truth.reconcile_truth(db, AgentClient(), conf)
    # Then it leaves the volume alone (the job's own finish or rollback is the truth for now)
    assert out.repairs == [] and pool_of(db, "vm2-root") == before


def test_an_ambiguous_truth_changes_nothing(db, agents, conf):
    # Given vm2-root's file copied (not moved) to two other pools and removed from its own
    import shutil

    vol = volume_row(db, "vm2-root")
    src = pool_dir(agents, db, "c1-gold-2") / vol.path
    for other in ("c1-gold", "c1-silver"):
        shutil.copy(src, pool_dir(agents, db, other) / vol.path)
    src.unlink()
    before = pool_of(db, "vm2-root")
    # When the truth reconciler runs
    out = truth.reconcile_truth(db, AgentClient(), conf)
    # Then it does not pick one: nothing changes, the skip says why
    assert out.repairs == [] and pool_of(db, "vm2-root") == before
    assert any("vm2-root" in s and "several pools" in s for s in out.skipped)


def test_the_sweep_runs_the_check_only_every_interval(db, agents, conf):
    calls = []

    class Counting(AgentClient):
        def get_volume(self, base_url, volume_id):
            calls.append(volume_id)
            return super().get_volume(base_url, volume_id)

    clock = [1000.0]
    assert truth.reconcile_if_due(db, Counting(), conf, clock=lambda: clock[0]) == []
    first = len(calls)
    assert first > 0
    clock[0] += 10  # within the default interval (300 s): no run
    truth.reconcile_if_due(db, Counting(), conf, clock=lambda: clock[0])
    assert len(calls) == first
    clock[0] += 300
    truth.reconcile_if_due(db, Counting(), conf, clock=lambda: clock[0])
    assert len(calls) == 2 * first


def _instance(db, vm_name: str) -> str:
    with db.uow() as uow:
        return uow.session.scalar(select(models.VirtualMachine.instance_name)
                                  .where(models.VirtualMachine.name == vm_name))


def _pool_to(db, pool_uuid: str) -> dict:
    from orchestrator.jobkinds import pool_to

    with db.uow() as uow:
        return pool_to(uow.session.scalar(select(models.StoragePool).where(models.StoragePool.uuid == pool_uuid)))
