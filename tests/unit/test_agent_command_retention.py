"""Finished command records are kept for the retention, then removed from memory and disk; a
command that has not finished is never removed, and a record lives at least as long as a job may
still ask about it (2 x its wait + the margin).

The store's clock is replaced by one the test moves forward (``time.time``; its monotonic clock
stays real, and records are looked over on every new command: ``PRUNE_INTERVAL`` = 0).
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

import agent.commands
from agent.host import HostAgent
from agent.main import build_parser, main as agent_main
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body

DAY = 86400.0


class Clock:
    """``time`` for ``agent.commands``: wall time moved forward by ``ahead`` seconds."""

    def __init__(self):
        self.ahead = 0.0

    def time(self) -> float:
        return time.time() + self.ahead

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(agent.commands, "time", fake)
    monkeypatch.setattr(agent.commands, "PRUNE_INTERVAL", 0.0)
    return fake


def record_file(root: Path, command_id: str) -> Path:
    return root / ".agent" / "h1" / "commands" / f"{command_id}.json"


def start(root: Path, **options) -> tuple[HostAgent, HostClient]:
    host = HostAgent("h1", root, zero_copy=True, **options)
    return host, HostClient.for_app(create_app({"h1": host}), "h1")


def a_finished_migration(client: HostClient, wait: int = 60) -> str:
    src, dst = make_pool(), make_pool()
    vid = str(uuid.uuid4())
    assert client.create_volume(vid, f"{vid}.vhdx", src, 4096)[0] == 201
    command_id = client.submit(migrate_body(vid, f"{vid}.vhdx", src, dst, wait=wait))[1]["id"]
    assert client.wait_for_state(command_id, timeout=10)["state"] == "succeeded"
    return command_id


def test_a_finished_command_is_kept_for_the_retention_then_removed_from_memory_and_disk(tmp_path, clock):
    host, client = start(tmp_path)
    try:
        old = a_finished_migration(client)
        clock.ahead = 7 * DAY - 60
        kept = a_finished_migration(client)  # creating a command looks over the records
        assert client.command(old)[0] == 200 and record_file(tmp_path, old).exists()

        clock.ahead = 7 * DAY + 1
        newest = a_finished_migration(client)
        assert client.command(old)[0] == 404
        assert not record_file(tmp_path, old).exists()
        for command_id in (kept, newest):  # ended less than 7 days ago (by the store's clock)
            assert client.command(command_id)[1]["state"] == "succeeded"
            assert record_file(tmp_path, command_id).exists()
    finally:
        host.close()


def test_a_record_is_kept_at_least_twice_its_wait_plus_the_margin(tmp_path, clock):
    host, client = start(tmp_path, command_retention=DAY)
    try:
        short, long = a_finished_migration(client, wait=60), a_finished_migration(client, wait=int(DAY))
        clock.ahead = 2 * DAY  # past the retention, not past 2 x wait + margin for the long one
        a_finished_migration(client)
        assert client.command(short)[0] == 404
        assert client.command(long)[0] == 200

        clock.ahead = 2 * DAY + agent.commands.RETENTION_MARGIN + 1
        a_finished_migration(client)
        assert client.command(long)[0] == 404
        assert not record_file(tmp_path, long).exists()
    finally:
        host.close()


def test_commands_that_have_not_finished_are_never_removed(tmp_path, clock):
    host, client = start(tmp_path, max_storage_migrations=1)
    src, dst = make_pool(), make_pool()

    def submit() -> str:
        vid = str(uuid.uuid4())
        assert client.create_volume(vid, f"{vid}.vhdx", src, 4096)[0] == 201
        return client.submit(migrate_body(vid, f"{vid}.vhdx", src, dst, wait=60))[1]["id"]

    try:
        assert client.add_fault(type="hang")[0] == 201
        running, queued = submit(), submit()
        client.wait_for_state(running, "running", timeout=10)
        clock.ahead = 30 * DAY
        ids = [running, queued, submit()]  # the third one looks over the records
        assert client.command(running)[1]["state"] == "running"
        assert client.command(queued)[1]["state"] == "accepted"
        assert record_file(tmp_path, running).exists() and record_file(tmp_path, queued).exists()
        for command_id in ids:
            client.abort(command_id)
    finally:
        host.close()


def test_a_restarted_agent_removes_the_records_past_their_retention_and_keeps_the_rest(tmp_path, clock):
    host, client = start(tmp_path)
    try:
        old = a_finished_migration(client)
    finally:
        host.close()
    clock.ahead = 3 * DAY
    host, client = start(tmp_path, command_retention=2 * DAY)
    try:
        assert client.command(old)[0] == 404
        assert not record_file(tmp_path, old).exists()
    finally:
        host.close()
    clock.ahead = 0.0
    host, client = start(tmp_path)
    try:
        recent = a_finished_migration(client)
    finally:
        host.close()
    host, client = start(tmp_path)
    try:
        assert client.command(recent)[1]["state"] == "succeeded"
    finally:
        host.close()


def test_the_retention_is_given_in_days_on_the_command_line_and_must_be_positive(tmp_path, capsys):
    args = build_parser().parse_args(["--host", "h1", "--command-retention", "0.5"])
    assert args.command_retention == 0.5
    assert build_parser().parse_args(["--host", "h1"]).command_retention == 7
    with pytest.raises(SystemExit) as exit_:
        agent_main(["--host", "h1", "--root", str(tmp_path), "--port", "0", "--command-retention", "0"])
    assert exit_.value.code == 2
    assert "--command-retention must be a positive number of days" in capsys.readouterr().err
    with pytest.raises(ValueError, match="positive"):
        HostAgent("h1", tmp_path, command_retention=0)


def test_motion_agent_passes_the_retention_to_the_agent(monkeypatch):
    import agent.main
    from motion import cli

    seen = []
    monkeypatch.setattr(agent.main, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["agent", "--host", "h1", "--command-retention", "2.5"]) == 0
    assert cli.main(["agent", "--host", "h1"]) == 0
    with_it, without = seen
    assert with_it[with_it.index("--command-retention") + 1] == "2.5"
    assert "--command-retention" not in without  # the agent's own default (7 days) applies
