"""A restarted agent (a new HostAgent on the same root) knows outcomes and finishes what was cut short."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from agent.host import RESTARTED_ERROR, HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body

KIB = 1024


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


def client_for(agent: HostAgent) -> HostClient:
    return HostClient.for_app(create_app({agent.name: agent}), agent.name)


def given_a_volume(client, src, size=256 * KIB):
    vid = str(uuid.uuid4())
    assert client.create_volume(vid, f"{vid}.vhdx", src, size, vm="i-2-10-VM")[0] == 201
    return vid, f"{vid}.vhdx"


def test_a_restarted_agent_still_reports_a_finished_command_and_fails_an_interrupted_one(tmp_path):
    src, dst = make_pool("src"), make_pool("dst")
    first = HostAgent("h1", tmp_path, max_storage_migrations=1, chunk_size=64 * KIB)
    client = client_for(first)
    done_vol, hung_vol, queued_vol = (given_a_volume(client, src) for _ in range(3))
    finished = client.submit(migrate_body(*done_vol, src, dst))[1]["id"]
    finished_record = client.wait_for_state(finished)
    client.add_fault(type="hang", volumeId=hung_vol[0])
    hung = client.submit(migrate_body(*hung_vol, src, dst))[1]["id"]
    client.wait_for_state(hung, "running")
    queued = client.submit(migrate_body(*queued_vol, src, dst))[1]["id"]
    hung_source = pool_file(tmp_path, src, hung_vol[1]).read_bytes()
    first.close()
    # What a crash mid-copy leaves behind: a partial destination copy.
    pool_file(tmp_path, dst, hung_vol[1] + ".partial").write_bytes(b"half a disk")

    second = HostAgent("h1", tmp_path, max_storage_migrations=1)
    try:
        client = client_for(second)
        assert client.command(finished) == (200, finished_record)
        for cid in (hung, queued):
            record = client.command(cid)[1]
            assert (record["state"], record["error"]) == ("failed", RESTARTED_ERROR)
        assert pool_file(tmp_path, src, hung_vol[1]).read_bytes() == hung_source
        assert not pool_file(tmp_path, dst, hung_vol[1] + ".partial").exists()
        assert not pool_file(tmp_path, dst, hung_vol[1]).exists()
        assert client.locate(done_vol[0])[1]["locations"][0]["pool"] == dst["uuid"]
        assert client.locate(hung_vol[0])[1]["locations"][0]["pool"] == src["uuid"]
        assert client.status()[1]["running"] == client.status()[1]["queued"] == 0
        # Reposting an interrupted command's id gives its outcome; it does not run again.
        assert client.submit(migrate_body(*hung_vol, src, dst, command_id=hung))[1]["state"] == "failed"
    finally:
        second.close()


def _interrupted_migration(tmp_path):
    """A command left ``running`` on disk by an agent that stopped mid-command."""
    src, dst = make_pool("src"), make_pool("dst")
    first = HostAgent("h1", tmp_path)
    client = client_for(first)
    vid, name = given_a_volume(client, src)
    client.add_fault(type="hang")
    cid = client.submit(migrate_body(vid, name, src, dst))[1]["id"]
    client.wait_for_state(cid, "running")
    first.close()
    return cid, vid, name, src, dst


def test_a_crash_after_the_source_was_removed_is_recovered_as_a_success(tmp_path):
    cid, vid, name, src, dst = _interrupted_migration(tmp_path)
    # Given the copy was renamed into place and the source removed before the record was written:
    pool_file(tmp_path, dst, name).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(pool_file(tmp_path, src, name), pool_file(tmp_path, dst, name))

    agent = HostAgent("h1", tmp_path)
    try:
        record = client_for(agent).command(cid)[1]
        assert record["state"] == "succeeded"
        assert record["result"] == {"volumePath": name, "pool": dst["uuid"]}
        assert record["bytesDone"] == record["bytesTotal"] == 256 * KIB
        assert [loc["pool"] for loc in client_for(agent).locate(vid)[1]["locations"]] == [dst["uuid"]]
    finally:
        agent.close()


def test_a_crash_between_rename_and_source_removal_keeps_only_the_source(tmp_path):
    cid, vid, name, src, dst = _interrupted_migration(tmp_path)
    pool_file(tmp_path, dst, name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pool_file(tmp_path, src, name), pool_file(tmp_path, dst, name))

    agent = HostAgent("h1", tmp_path)
    try:
        record = client_for(agent).command(cid)[1]
        assert (record["state"], record["error"]) == ("failed", RESTARTED_ERROR)
        assert pool_file(tmp_path, src, name).exists()
        assert not pool_file(tmp_path, dst, name).exists()
    finally:
        agent.close()


def test_command_records_are_json_files_under_the_hosts_state_directory(tmp_path):
    src, dst = make_pool("src"), make_pool("dst")
    agent = HostAgent("h1", tmp_path)
    try:
        client = client_for(agent)
        vid, name = given_a_volume(client, src)
        cid = client.submit(migrate_body(vid, name, src, dst))[1]["id"]
        client.wait_for_state(cid)
    finally:
        agent.close()

    files = sorted(f.name for f in (tmp_path / ".agent" / "h1" / "commands").iterdir())
    # besides the record, at most the store's temp file (the record's replaced version, which
    # the next write reuses; removed at the next start)
    assert [f for f in files if not f.startswith(".")] == [f"{cid}.json"]
    assert all(f.startswith(".spare.") and f.endswith(".tmp") for f in files if f.startswith("."))
