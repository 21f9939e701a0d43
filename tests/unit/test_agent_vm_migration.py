"""MigrateWithStorageCommand: a VM and its volumes move to another host, all or nothing."""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from agent.backends.copying import Mirror
from agent.host import RESTARTED_ERROR, HostAgent
from agent.serve import AgentServer
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body, mws_body, replay_writes, wait_until

KIB = 1024
VM, VM_UUID = "i-2-5-VM", "6b0c7a54-0b6f-4c59-b642-e7be5b97a98e"


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


@pytest.fixture
def server(tmp_path):
    srv = AgentServer(["hv-a", "hv-b"], tmp_path, chunk_size=64 * KIB).start()
    yield srv
    srv.shutdown()


@pytest.fixture
def hosts(server):
    return HostClient.for_url(server.base_url("hv-a")), HostClient.for_url(server.base_url("hv-b"))


class Setup:
    """A VM on hv-a with two volumes on hv-a's local pool and one on the cluster's shared pool."""

    def __init__(self, client: HostClient, root: Path, size=256 * KIB):
        self.root = root
        self.a_local, self.b_local, self.shared = make_pool("a-local"), make_pool("b-local"), make_pool("shared")
        self.volumes = []
        for pool in (self.a_local, self.a_local, self.shared):
            vid = str(uuid.uuid4())
            assert client.create_volume(vid, f"{vid}.vhdx", pool, size, vm=VM)[0] == 201
            self.volumes.append({"id": vid, "path": f"{vid}.vhdx", "pool": pool})
        assert client.register_vm(VM, VM_UUID, self.volumes)[0] == 201
        self.original = {v["id"]: pool_file(root, v["pool"], v["path"]).read_bytes() for v in self.volumes}

    def moves(self):
        first, second, third = self.volumes
        return [(first, self.b_local), (second, self.b_local), (third, self.shared)]

    def body(self, server, target="hv-b", **kw):
        return mws_body(VM, VM_UUID, target, server.base_url(target), self.moves(), **kw)

    def source(self, i) -> Path:
        v = self.volumes[i]
        return pool_file(self.root, v["pool"], v["path"])

    def destination(self, i) -> Path:
        return pool_file(self.root, self.moves()[i][1], self.volumes[i]["path"])

    def assert_all_back_on_the_source(self, a: HostClient, b: HostClient):
        for i in (0, 1):
            assert self.source(i).read_bytes() == self.original[self.volumes[i]["id"]]
            assert not self.destination(i).exists()
            assert not self.destination(i).with_name(self.destination(i).name + ".partial").exists()
        assert self.source(2).read_bytes() == self.original[self.volumes[2]["id"]]
        assert [v["pool"] for v in a.vm(VM)[1]["volumes"]] == [v["pool"]["uuid"] for v in self.volumes]
        assert b.vm(VM)[0] == 404


def test_a_vm_moves_to_the_target_host_with_its_volumes_and_the_sources_are_removed(server, hosts, tmp_path):
    a, b = hosts
    setup = Setup(a, tmp_path)
    body = setup.body(server)

    status, accepted = a.submit(body)
    assert status == 202 and [v["state"] for v in accepted["volumes"]] == ["pending", "pending", "stays"]
    done = a.wait_for_state(body["id"])

    assert done["state"] == "succeeded", done
    assert done["result"] == {"vm": VM, "host": "hv-b", "volumeTos": [
        {"id": v["id"], "path": v["path"], "pool": pool["uuid"]} for v, pool in setup.moves()]}
    assert done["bytesDone"] == done["bytesTotal"] == 2 * 256 * KIB
    assert [(v["state"], v["bytesDone"], v["bytesTotal"]) for v in done["volumes"]] == [
        ("moved", 256 * KIB, 256 * KIB), ("moved", 256 * KIB, 256 * KIB), ("stays", 0, 0)]
    for i in (0, 1):
        assert setup.destination(i).read_bytes() == setup.original[setup.volumes[i]["id"]]
        assert not setup.source(i).exists()
    assert setup.source(2).read_bytes() == setup.original[setup.volumes[2]["id"]]  # never copied
    assert a.vm(VM)[0] == 404
    status, vm = b.vm(VM)
    assert status == 200 and vm["uuid"] == VM_UUID and vm["host"] == "hv-b"
    assert [v["pool"] for v in vm["volumes"]] == [setup.b_local["uuid"]] * 2 + [setup.shared["uuid"]]
    assert [loc["pool"] for loc in b.locate(setup.volumes[0]["id"])[1]["locations"]] == [setup.b_local["uuid"]]
    # One storage migration, counted on both hosts of this process.
    assert a.status()[1]["peakStorageMigrations"] == b.status()[1]["peakStorageMigrations"] == 1
    assert a.submit(body) == (200, done)


def test_when_the_second_volume_fails_everything_goes_back_to_the_source(server, hosts, tmp_path):
    a, b = hosts
    setup = Setup(a, tmp_path)
    a.add_fault(type="fail", command="MigrateWithStorageCommand", volumeIndex=1, message="disk 2 broke")
    body = setup.body(server)

    a.submit(body)
    done = a.wait_for_state(body["id"])

    assert done["state"] == "failed"
    second = setup.volumes[1]
    assert f"at volume {second['id']} ({second['path']}): disk 2 broke" in done["error"]
    assert "no volume is left split between two places" in done["error"]
    assert [v["state"] for v in done["volumes"]] == ["rolledBack", "failed", "stays"]
    assert done["volumes"][0]["bytesDone"] == 256 * KIB  # the first volume had been copied
    setup.assert_all_back_on_the_source(a, b)


def test_when_the_target_agent_refuses_the_vm_the_switch_over_is_undone(server, hosts, tmp_path):
    a, b = hosts
    setup = Setup(a, tmp_path)
    body = mws_body(VM, VM_UUID, "hv-b", server.base_url("hv-nowhere"), setup.moves())

    a.submit(body)
    done = a.wait_for_state(body["id"])

    assert done["state"] == "failed"
    assert "at the switch-over" in done["error"] and "HTTP 404" in done["error"]
    setup.assert_all_back_on_the_source(a, b)


def test_aborting_a_vm_migration_mid_way_leaves_everything_on_the_source(server, hosts, tmp_path):
    a, b = hosts
    setup = Setup(a, tmp_path)
    a.add_fault(type="hang", command="MigrateWithStorageCommand", volumeIndex=1)
    body = setup.body(server)
    a.submit(body)
    wait_until(lambda: a.command(body["id"])[1]["volumes"][0]["state"] == "copied", what="first volume copied")

    status, aborted = a.abort(body["id"])

    assert status == 200 and aborted["state"] == "aborted"
    assert aborted["volumes"][0]["state"] == "rolledBack"
    setup.assert_all_back_on_the_source(a, b)


def test_a_vm_migration_holds_a_slot_on_the_target_host_of_the_same_process(tmp_path):
    with AgentServer(["hv-a", "hv-b"], tmp_path, max_storage_migrations=1, chunk_size=64 * KIB) as server:
        a, b = HostClient.for_url(server.base_url("hv-a")), HostClient.for_url(server.base_url("hv-b"))
        setup = Setup(a, tmp_path)
        a.add_fault(type="hang", command="MigrateWithStorageCommand")
        body = setup.body(server)
        a.submit(body)
        a.wait_for_state(body["id"], "running")
        vid = str(uuid.uuid4())
        b.create_volume(vid, "other.vhdx", setup.b_local, 64 * KIB)

        _, queued = b.submit(migrate_body(vid, "other.vhdx", setup.b_local, make_pool("b-other")))

        assert b.status()[1]["running"] == 1 and b.command(queued["id"])[1]["state"] == "accepted"
        a.abort(body["id"])
        assert b.wait_for_state(queued["id"])["state"] == "succeeded"
        assert b.status()[1]["peakStorageMigrations"] == 1


def test_guest_writes_during_a_vm_migration_all_reach_the_destination_in_order(server, hosts, tmp_path, monkeypatch):
    a, b = hosts
    setup = Setup(a, tmp_path)
    reached, release = threading.Event(), threading.Event()
    real = Mirror.converge

    def held(self, progress):  # pause once every bulk copy is done, before the re-copy passes
        reached.set()
        release.wait(30)
        return real(self, progress)

    monkeypatch.setattr(Mirror, "converge", held)
    a.guest(200)
    b.guest(200)
    body = setup.body(server)
    a.submit(body)
    assert reached.wait(30)
    source_guest = server.hosts["hv-a"].guest
    for volume in setup.volumes:
        source_guest.write_once(source_guest.disk(volume["id"]), offset=0)  # an already copied block
    release.set()
    done = a.wait_for_state(body["id"])
    a.guest(0)
    b.guest(0)

    assert done["state"] == "succeeded", done
    assert done["recopiedBytes"] > 0
    for i, volume in enumerate(setup.volumes):
        before, after = a.writes(volume["id"])[1], b.writes(volume["id"])[1]
        assert before["writes"], "the guest wrote on the source host"
        final = replay_writes(setup.original[volume["id"]], before["writes"] + after["writes"], volume["id"])
        assert (setup.destination(i) if i < 2 else setup.source(i)).read_bytes() == final
        assert after["check"]["ok"]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"tgtHost": "hv-a"}, "'tgtHost' names this host"),
        ({"tgtAgentUrl": "ftp://x"}, "'tgtAgentUrl'"),
        ({"volumeToPool": []}, "'volumeToPool'"),
        ({"vm": {"name": VM}}, "vm: missing field 'uuid'"),
        ({"volumeToPool": [{"volume": {"id": "v1", "path": "d.vhdx"}, "pool": make_pool()}]},
         "volumeToPool[0].volume: field 'pool'"),
    ],
)
def test_an_invalid_vm_migration_is_rejected_and_nothing_is_recorded(server, hosts, change, expected):
    a, _ = hosts
    body = mws_body(VM, VM_UUID, "hv-b", server.base_url("hv-b"),
                    [({"id": "v1", "path": "d.vhdx", "pool": make_pool()}, make_pool())], command_id="cmd-1")
    body.update(change)

    status, answer = a.submit(body)

    assert status == 400 and expected in answer["error"]
    assert a.command("cmd-1")[0] == 404


class _Crash(BaseException):
    """Ends a worker thread the way a process crash would: nothing after it is recorded."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_restart_after_the_switch_over_finishes_the_vm_migration(tmp_path, monkeypatch):
    with AgentServer(["hv-b"], tmp_path) as target:
        source = HostAgent("hv-a", tmp_path, chunk_size=64 * KIB)
        a = HostClient.for_app(create_app({"hv-a": source}), "hv-a")
        setup = Setup(a, tmp_path)
        a.add_fault(type="crash", command="MigrateWithStorageCommand")

        def crash(self, command_id):
            raise _Crash()

        monkeypatch.setattr(HostAgent, "crash", crash)
        body = mws_body(VM, VM_UUID, "hv-b", target.base_url("hv-b"), setup.moves())
        a.submit(body)
        wait_until(lambda: source.slots.running("hv-a") == 0 and not setup.source(0).exists(), what="the crash")
        assert a.command(body["id"])[1]["state"] == "running"
        source.close()

        restarted = HostAgent("hv-a", tmp_path)
        try:
            record = HostClient.for_app(create_app({"hv-a": restarted}), "hv-a").command(body["id"])[1]
            assert record["state"] == "succeeded" and record["result"]["host"] == "hv-b"
            assert restarted.vms.get(VM) is None
            assert HostClient.for_url(target.base_url("hv-b")).vm(VM)[0] == 200
            assert setup.destination(0).read_bytes() == setup.original[setup.volumes[0]["id"]]
        finally:
            restarted.close()


def test_a_restart_before_the_switch_over_rolls_the_vm_migration_back(tmp_path):
    source = HostAgent("hv-a", tmp_path, chunk_size=64 * KIB)
    a = HostClient.for_app(create_app({"hv-a": source}), "hv-a")
    setup = Setup(a, tmp_path)
    a.add_fault(type="hang", command="MigrateWithStorageCommand", volumeIndex=1)
    body = mws_body(VM, VM_UUID, "hv-b", "http://127.0.0.1:9/hosts/hv-b", setup.moves())
    a.submit(body)
    wait_until(lambda: a.command(body["id"])[1]["volumes"][0]["state"] == "copied", what="first volume copied")
    source.close()
    # What a crash would leave: the first copy renamed into place, the second one partial.
    setup.destination(0).write_bytes(setup.original[setup.volumes[0]["id"]])
    setup.destination(1).with_name(setup.volumes[1]["path"] + ".partial").write_bytes(b"half")

    restarted = HostAgent("hv-a", tmp_path)
    try:
        client = HostClient.for_app(create_app({"hv-a": restarted}), "hv-a")
        record = client.command(body["id"])[1]
        assert (record["state"], record["error"]) == ("failed", RESTARTED_ERROR)
        assert [v["id"] for v in client.vm(VM)[1]["volumes"]] == [v["id"] for v in setup.volumes]
        for i in (0, 1):
            assert setup.source(i).read_bytes() == setup.original[setup.volumes[i]["id"]]
            assert not setup.destination(i).exists()
            assert not setup.destination(i).with_name(setup.volumes[i]["path"] + ".partial").exists()
    finally:
        restarted.close()
