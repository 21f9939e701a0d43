"""What a command's records on disk promise: an answered command survives a crash, a command is
on disk as ``running`` before any of its files is touched, and a crash at any point of a
migration is recovered to one complete copy with an outcome that says where it is.

A crash is simulated by copying the agent's whole data root (state files and pools) at every
durable step - each ``fsync`` of a directory, which follows every rename, unlink and record
write - and at the hard link of a zero-copy migration; a new ``HostAgent`` started on a copy
is the agent restarted after a crash at that point.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from pathlib import Path

import pytest

import agent.backends.copying
import agent.backends.zerocopy
import agent.persist
from agent.commands import CommandStore
from agent.host import RESTARTED_ERROR, HostAgent
from agent.testing import make_pool, migrate_body

KIB = 1024


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


def record_on_disk(root: Path, command_id: str) -> dict | None:
    path = root / ".agent" / "h1" / "commands" / f"{command_id}.json"
    return json.loads(path.read_text())["record"] if path.exists() else None


def given_a_volume(host: HostAgent, src: dict, size: int = 192 * KIB + 5) -> tuple[str, str, bytes]:
    vid = str(uuid.uuid4())
    host.create_volume({"id": vid, "path": f"{vid}.vhdx", "pool": src, "size": size, "vm": None})
    return vid, f"{vid}.vhdx", pool_file(host.root, src, f"{vid}.vhdx").read_bytes()


def given_a_zero_copy_migration(root: Path) -> tuple[HostAgent, dict]:
    """A zero-copy host agent with a volume on pool src, and the body of its move to pool dst."""
    host = HostAgent("h1", root, zero_copy=True)
    src, dst = make_pool("src"), make_pool("dst")
    vid, name, _ = given_a_volume(host, src)
    return host, migrate_body(vid, name, src, dst)


def test_a_command_that_ends_before_its_answer_is_written_running_then_succeeded_never_accepted(tmp_path, monkeypatch):
    host, body = given_a_zero_copy_migration(tmp_path)
    try:
        written = []
        real_write = agent.persist.write_json_atomic

        def spy(path, data, spare=None):
            if str(path).endswith(f"{body['id']}.json"):
                written.append(data["record"]["state"])
            real_write(path, data, spare)

        monkeypatch.setattr(agent.commands, "write_json_atomic", spy)
        record, created = host.submit_command(body, wait=5)
    finally:
        host.close()
    assert created and record["state"] == "succeeded"
    assert written == ["running", "succeeded"]


def test_a_command_is_on_disk_as_running_before_any_of_its_files_is_touched(tmp_path, monkeypatch):
    host = HostAgent("h1", tmp_path)
    seen = []
    real_mirror = host.backend.mirror

    def mirror(*args, **kwargs):
        seen.append(record_on_disk(tmp_path, body["id"]))
        return real_mirror(*args, **kwargs)

    monkeypatch.setattr(host.backend, "mirror", mirror)
    try:
        src, dst = make_pool("src"), make_pool("dst")
        vid, name, _ = given_a_volume(host, src)
        body = migrate_body(vid, name, src, dst)
        assert host.submit_command(body, wait=5)[0]["state"] == "succeeded"
    finally:
        host.close()
    assert [r["state"] for r in seen] == ["running"]


def test_a_command_answered_while_it_waits_for_a_slot_is_on_disk_and_fails_after_a_crash(tmp_path):
    host = HostAgent("h1", tmp_path, max_storage_migrations=1)
    src, dst = make_pool("src"), make_pool("dst")
    try:
        host.add_fault({"type": "hang"})
        busy = given_a_volume(host, src)
        host.submit_command(migrate_body(*busy[:2], src, dst))
        vid, name, original = given_a_volume(host, src)
        body = migrate_body(vid, name, src, dst)
        # Answered after a short wait, still queued behind the hung command:
        record, _ = host.submit_command(body, wait=0.05)
        assert record["state"] == "accepted"
        assert record_on_disk(tmp_path, body["id"])["state"] == "accepted"
        crashed = tmp_path.parent / f"{tmp_path.name}-crash"
        shutil.copytree(tmp_path, crashed, symlinks=True)  # what a crash right after the answer leaves
    finally:
        host.close()
    again = HostAgent("h1", crashed)
    try:
        record = again.command(body["id"])
        assert (record["state"], record["error"]) == ("failed", RESTARTED_ERROR)
        assert pool_file(crashed, src, name).read_bytes() == original
    finally:
        again.close()


def test_a_command_nobody_was_told_about_and_that_never_started_is_not_on_disk(tmp_path):
    store = CommandStore(tmp_path / "commands", "h1")
    body = migrate_body(str(uuid.uuid4()), "v.vhdx", make_pool("src"), make_pool("dst"))
    store.create(body)
    assert list((tmp_path / "commands").iterdir()) == []
    # A crash now loses it, and nothing else: its client got no answer and will post it again.
    assert CommandStore(tmp_path / "commands", "h1").get(body["id"]) is None
    # Telling someone about it writes it first.
    assert store.get(body["id"], durable=True)["state"] == "accepted"
    assert CommandStore(tmp_path / "commands", "h1").get(body["id"])["state"] == "accepted"


@pytest.mark.parametrize("zero_copy", [True, False], ids=["zero-copy", "copy"])
def test_a_crash_at_any_step_of_a_migration_recovers_to_one_complete_copy_and_a_true_outcome(
        tmp_path, monkeypatch, zero_copy):
    root = tmp_path / "root"
    host = HostAgent("h1", root, zero_copy=zero_copy, chunk_size=64 * KIB)
    src, dst = make_pool("src"), make_pool("dst")
    vid, name, original = given_a_volume(host, src)
    body = migrate_body(vid, name, src, dst)
    snapshots: list[Path] = []

    def snapshot(what: str) -> None:
        target = tmp_path / f"crash-{len(snapshots):02d}-{what}"
        shutil.copytree(root, target, symlinks=True)
        snapshots.append(target)

    real_fsync_dir, real_link = agent.persist.fsync_dir, os.link

    def fsync_dir(directory):
        real_fsync_dir(directory)
        snapshot("fsync")

    def link(a, b, **kwargs):
        real_link(a, b, **kwargs)
        snapshot("link")

    for module in (agent.persist, agent.backends.copying, agent.backends.zerocopy):
        monkeypatch.setattr(module, "fsync_dir", fsync_dir)
    monkeypatch.setattr(agent.backends.zerocopy.os, "link", link)
    try:
        snapshot("before")
        answer, _ = host.submit_command(body, wait=10)
        monkeypatch.undo()
        assert answer["state"] == "succeeded"
        assert record_on_disk(root, body["id"]) == answer  # what was answered is what is on disk
    finally:
        monkeypatch.undo()
        host.close()

    outcomes = []
    for crashed in snapshots:
        again = HostAgent("h1", crashed)
        try:
            record = again.commands.get(body["id"])
            at_src, at_dst = pool_file(crashed, src, name), pool_file(crashed, dst, name)
            assert not pool_file(crashed, dst, name + ".partial").exists(), crashed.name
            if record is None or record["state"] == "failed":
                # Unknown (never answered, never started) or failed: the data is on the source only.
                assert at_src.read_bytes() == original and not at_dst.exists(), crashed.name
                assert record is None or record["error"] == RESTARTED_ERROR
            else:
                assert record["state"] == "succeeded", crashed.name
                assert at_dst.read_bytes() == original and not at_src.exists(), crashed.name
                assert record["result"] == {"volumePath": name, "pool": dst["uuid"]}
            assert [loc["pool"] for loc in again.locate_volume(vid)["locations"]] == \
                [(dst if record and record["state"] == "succeeded" else src)["uuid"]]
            outcomes.append(record["state"] if record else None)
        finally:
            again.close()
    # Every kind of crash happened: before the first record, while running, after the end.
    assert outcomes[0] is None and "failed" in outcomes and outcomes[-1] == "succeeded"
    assert outcomes == sorted(outcomes, key=[None, "failed", "succeeded"].index)


def test_a_post_without_wait_is_answered_accepted_and_the_command_is_on_disk_by_then(tmp_path, monkeypatch):
    host, body = given_a_zero_copy_migration(tmp_path)
    try:
        started = threading.Event()
        real_start = host._start

        def start_then_let_it_run(command_id, ticket):
            real_start(command_id, ticket)
            host.command(command_id, wait=5)  # it ends before the POST is answered
            started.set()

        monkeypatch.setattr(host, "_start", start_then_let_it_run)
        record, created = host.submit_command(body)
        assert started.is_set() and created
        assert record["state"] == "accepted"  # the new record, as the protocol says
        assert record_on_disk(tmp_path, body["id"])["state"] == "succeeded"
    finally:
        host.close()
