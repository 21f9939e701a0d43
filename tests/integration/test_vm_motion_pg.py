"""VM migrations (the seed's Scenario 2) on PostgreSQL: placement, intake, finish and roll back,
with a fake agent at the port."""
import json
import threading

import pytest
from sqlalchemy import select

from orchestrator import models
from orchestrator.config import Settings
from orchestrator.errors import InvalidParameter
from orchestrator.motion import migrate_volume
from orchestrator.runner import Runner
from orchestrator.suitability import VmMove
from orchestrator.vm_motion import migrate_vm
from tests.helpers import admin_caller, count, ids, volume_row

pytestmark = pytest.mark.postgres


class FakeAgent:
    """Answers a MigrateWithStorageCommand like the agent: every volume at its destination."""

    def __init__(self, outcome="succeeded"):
        self.outcome, self.posted = outcome, []

    def post_command(self, base_url, payload):
        self.posted.append((base_url, payload))
        return {"id": payload["id"], "state": "accepted"}

    def get_command(self, base_url, command_id):
        payload = self.posted[-1][1]
        if self.outcome == "failed":
            return {"id": command_id, "state": "failed", "error": "volume 2 of 3: pool offline"}
        tos = [{"id": p["volume"]["id"], "path": "new-" + p["volume"]["path"], "pool": p["pool"]["uuid"]}
               for p in payload["volumeToPool"]]
        return {"id": command_id, "state": "succeeded", "bytesDone": 1, "bytesTotal": 1,
                "result": {"vm": payload["vm"]["name"], "host": payload["tgtHost"], "volumeTos": tos}}

    def get_volume(self, base_url, volume_id):
        return None

    def abort_command(self, base_url, command_id):
        return {"id": command_id, "state": "aborted"}


def vm_row(db, name):
    with db.uow() as uow:
        vm = uow.session.scalar(select(models.VirtualMachine).where(models.VirtualMachine.name == name))
        uow.session.expunge(vm)
        return vm


def pool_name(db, pool_id):
    with db.uow() as uow:
        return uow.session.get(models.StoragePool, pool_id).name


def submit(db, vm="vm1", host="h3", mapping=None, with_volumes=True):
    jobs = []
    [vm_id] = ids(db, models.VirtualMachine, vm)
    [host_id] = ids(db, models.Host, host)
    mapping = {ids(db, models.Volume, v)[0]: ids(db, models.StoragePool, p)[0] for v, p in (mapping or {}).items()}
    job_uuid = migrate_vm(db, jobs.append, admin_caller(db), vm_id, host_id, mapping, {}, with_volumes)
    return jobs[0], job_uuid


def settings(db):
    return Settings(database_url=db.url, worker_id="w", poll_interval=0.01,
                    agent_url="http://agents.invalid/hosts/{host}")


def test_without_a_map_shared_volumes_go_to_reachable_shared_pools_and_local_to_local(db):
    job_id, _ = submit(db)
    agent = FakeAgent()
    assert Runner(db, agent, settings(db)).run(job_id) == "succeeded"
    base_url, command = agent.posted[0]
    assert base_url == "http://agents.invalid/hosts/h1"  # sent to the source host's agent
    assert command["type"] == "MigrateWithStorageCommand" and command["tgtHost"] == "h3"
    assert command["tgtAgentUrl"] == "http://agents.invalid/hosts/h3"
    vm = vm_row(db, "vm1")
    [h1, h3] = ids(db, models.Host, "h1", "h3")
    assert (vm.state, vm.host_id, vm.last_host_id) == ("Running", h3, h1)
    placed = {name: pool_name(db, volume_row(db, name).pool_id) for name in ("vm1-root", "vm1-data", "vm1-local")}
    assert placed == {"vm1-root": "c2-gold", "vm1-data": "c2-gold", "vm1-local": "h3-local"}
    assert all(volume_row(db, n).state == "Ready" for n in placed)
    assert volume_row(db, "vm1-root").path.startswith("new-")


def test_with_a_map_every_volume_lands_on_the_pool_named(db):
    job_id, _ = submit(db, "vm2", "h2", {"vm2-root": "c1-gold"})
    assert Runner(db, FakeAgent(), settings(db)).run(job_id) == "succeeded"
    assert pool_name(db, volume_row(db, "vm2-root").pool_id) == "c1-gold"


@pytest.mark.parametrize("mapping,needle", [
    ({"vm1-root": "h3-local"}, "vm1-root -> pool h3-local: a volume on shared storage cannot move to local"),
    ({"vm1-local": "c2-gold"}, "vm1-local -> pool c2-gold: a volume on local storage cannot move to shared"),
    ({"vm1-root": "c1-gold-2"}, "vm1-root -> pool c1-gold-2: pool c1-gold-2 is not reachable from host h3"),
    ({"vm1-root": "h1-local"}, "is not reachable from host h3"),
])
def test_an_invalid_map_is_refused_naming_the_pair_and_changes_nothing(db, mapping, needle):
    with pytest.raises(InvalidParameter) as err:
        submit(db, "vm1", "h3", mapping)
    assert needle in err.value.text
    assert vm_row(db, "vm1").state == "Running"
    assert all(volume_row(db, n).state == "Ready" for n in ("vm1-root", "vm1-data", "vm1-local"))
    assert count(db, models.AsyncJob) == 0


def test_an_agent_failure_puts_the_vm_and_every_volume_back_on_the_source(db):
    before = {n: volume_row(db, n).pool_id for n in ("vm1-root", "vm1-data", "vm1-local")}
    job_id, _ = submit(db)
    assert Runner(db, FakeAgent("failed"), settings(db)).run(job_id) == "failed"
    [h1] = ids(db, models.Host, "h1")
    vm = vm_row(db, "vm1")
    assert (vm.state, vm.host_id) == ("Running", h1)
    assert {n: volume_row(db, n).pool_id for n in before} == before
    assert all(volume_row(db, n).state == "Ready" for n in before)
    with db.uow() as uow:
        job = uow.session.get(models.AsyncJob, job_id)
        assert job.status == 2 and "pool offline" in json.loads(job.result)["errortext"]


def test_host_only_migration_works_within_the_cluster_and_refuses_when_storage_must_move(db):
    job_id, _ = submit(db, "vm2", "h2", with_volumes=False)
    assert Runner(db, FakeAgent(), settings(db)).run(job_id) == "succeeded"
    assert vm_row(db, "vm2").host_id == ids(db, models.Host, "h2")[0]
    with pytest.raises(InvalidParameter) as err:
        submit(db, "vm1", "h2", with_volumes=False)  # vm1 has a local volume
    assert "use migrateVirtualMachineWithVolume" in err.value.text


def test_hosts_requiring_storage_motion_and_host_tags_are_judged_as_listed(db):
    with db.uow() as uow:
        vm3 = uow.session.scalar(select(models.VirtualMachine).where(models.VirtualMachine.name == "vm3"))
        verdicts = {v.facts.name: v for v in VmMove(uow.session, vm3).candidates()}
    assert verdicts["h2"].suitable and verdicts["h2"].requires_storage_motion
    assert not verdicts["h1"].suitable
    assert any("host tags do not match" in r for r in verdicts["h1"].reasons)
    assert not verdicts["h-old"].suitable


def test_a_vm_migration_and_a_volume_migration_of_that_vm_cannot_both_win(db):
    caller = admin_caller(db)
    [vm2] = ids(db, models.VirtualMachine, "vm2")
    [h2] = ids(db, models.Host, "h2")
    [vol] = ids(db, models.Volume, "vm2-root")
    [gold] = ids(db, models.StoragePool, "c1-gold")
    barrier, outcomes = threading.Barrier(2), []

    def attempt(fn):
        barrier.wait()
        try:
            fn()
            outcomes.append("accepted")
        except InvalidParameter:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(lambda: migrate_vm(db, lambda j: None, caller, vm2, h2, {}, {}),)),
               threading.Thread(target=attempt, args=(lambda: migrate_volume(db, lambda j: None, caller, vol, gold, True, {}),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted", "refused"]
    assert count(db, models.AsyncJob) == 1
