"""Live migration with a writing guest: no guest write is lost, and the agent can prove it."""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from agent.backends.copying import Mirror
from agent.host import HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body, replay_writes, wait_until

KIB = 1024
VM = "i-2-5-VM"


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


@pytest.fixture
def agent(tmp_path):
    host = HostAgent("h1", tmp_path, chunk_size=64 * KIB)
    yield host
    host.close()


@pytest.fixture
def client(agent):
    return HostClient.for_app(create_app({"h1": agent}), "h1")


@pytest.fixture
def held_after_bulk_copy(monkeypatch):
    """Every migration pauses between its bulk copy and its re-copy passes until released."""
    reached, release = threading.Event(), threading.Event()
    real = Mirror.converge

    def held(self, progress):
        reached.set()
        release.wait(30)
        return real(self, progress)

    monkeypatch.setattr(Mirror, "converge", held)
    yield reached, release
    release.set()


def given_a_running_vm(client, pool, size=512 * KIB):
    vid = str(uuid.uuid4())
    assert client.create_volume(vid, f"{vid}.vhdx", pool, size, vm=VM)[0] == 201
    status, vm = client.register_vm(VM, str(uuid.uuid4()), [{"id": vid, "path": f"{vid}.vhdx", "pool": pool}])
    assert status == 201
    return vid, f"{vid}.vhdx"


def test_guest_writes_are_off_by_default_so_a_volume_file_stays_as_it_was(client, agent, tmp_path):
    src = make_pool("src")
    vid, name = given_a_running_vm(client, src)
    before = pool_file(tmp_path, src, name).read_bytes()

    assert client.status()[1]["guestWritesPerSecond"] == 0
    assert agent.guest.write_once(agent.guest.disk(vid), background=True) is None
    assert pool_file(tmp_path, src, name).read_bytes() == before
    assert client.writes(vid)[1]["writes"] == []


def test_a_running_guest_writes_logged_blocks_that_the_agent_checks_against_the_file(client, tmp_path):
    src = make_pool("src")
    vid, name = given_a_running_vm(client, src)
    original = pool_file(tmp_path, src, name).read_bytes()

    client.guest(200)
    wait_until(lambda: len(client.writes(vid)[1]["writes"]) >= 5, what="guest writes")
    client.guest(0)
    status, log = client.writes(vid)

    assert status == 200 and log["check"]["ok"] and log["check"]["pool"] == src["uuid"]
    seqs = [w["seq"] for w in log["writes"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(w["offset"] % log["blockSize"] == 0 and w["vm"] == VM for w in log["writes"])
    assert pool_file(tmp_path, src, name).read_bytes() == replay_writes(original, log["writes"], vid)
    assert client.writes(vid, since=seqs[-1])[1]["writes"] == []


def test_after_a_live_migration_the_destination_holds_the_source_bytes_plus_every_guest_write_in_order(
        client, agent, tmp_path, held_after_bulk_copy):
    reached, release = held_after_bulk_copy
    src, dst = make_pool("src"), make_pool("dst")
    vid, name = given_a_running_vm(client, src)
    original = pool_file(tmp_path, src, name).read_bytes()
    client.guest(200)  # the background guest keeps writing all along

    _, record = client.submit(migrate_body(vid, name, src, dst, vm=VM))
    assert reached.wait(30), "the bulk copy did not finish"
    disk = agent.guest.disk(vid)
    for offset in (0, 100 * KIB, 300 * KIB, 511 * KIB):  # blocks the bulk copy has already copied
        assert agent.guest.write_once(disk, offset=offset)["pool"] == src["uuid"]
    release.set()
    done = client.wait_for_state(record["id"])
    client.guest(0)
    log = client.writes(vid)[1]

    assert done["state"] == "succeeded", done
    assert done["recopiedBytes"] > 0
    assert not pool_file(tmp_path, src, name).exists()
    assert pool_file(tmp_path, dst, name).read_bytes() == replay_writes(original, log["writes"], vid)
    assert log["check"] == {"pool": dst["uuid"], "checked": log["check"]["checked"], "ok": True,
                            "readable": True, "mismatches": []}
    assert client.vm(VM)[1]["volumes"][0]["pool"] == dst["uuid"]


def test_after_a_migration_the_guest_writes_to_the_destination(client, agent, tmp_path):
    src, dst = make_pool("src"), make_pool("dst")
    vid, name = given_a_running_vm(client, src)
    _, record = client.submit(migrate_body(vid, name, src, dst, vm=VM))
    assert client.wait_for_state(record["id"])["state"] == "succeeded"

    entry = agent.guest.write_once(agent.guest.disk(vid), offset=0)

    assert entry["pool"] == dst["uuid"]
    assert not pool_file(tmp_path, src, name).exists()
    assert client.writes(vid)[1]["check"]["ok"]


def test_an_aborted_live_migration_leaves_every_guest_write_in_the_source(client, agent, tmp_path,
                                                                           held_after_bulk_copy):
    reached, _ = held_after_bulk_copy
    src, dst = make_pool("src"), make_pool("dst")
    vid, name = given_a_running_vm(client, src)
    original = pool_file(tmp_path, src, name).read_bytes()
    _, record = client.submit(migrate_body(vid, name, src, dst, vm=VM))
    assert reached.wait(30)
    agent.guest.write_once(agent.guest.disk(vid), offset=64 * KIB)

    threading.Thread(target=client.abort, args=(record["id"],), daemon=True).start()
    wait_until(lambda: agent._controls.get(record["id"]) is None or agent._controls[record["id"]].abort_requested,
               what="the abort to arrive")
    held_after_bulk_copy[1].set()
    done = client.wait_for_state(record["id"])

    assert done["state"] == "aborted"
    log = client.writes(vid)[1]
    assert pool_file(tmp_path, src, name).read_bytes() == replay_writes(original, log["writes"], vid)
    assert not pool_file(tmp_path, dst, name).exists()
    assert not pool_file(tmp_path, dst, name + ".partial").exists()
