"""``motion db``, ``inventory``, ``keys`` and ``users`` on an embedded system's SQLite database
(``--data-dir``): what they print, their JSON, and exit code 2 for what they refuse."""
from __future__ import annotations

import io
import json
import logging

import pytest
import yaml

from motion import cli
from tests.helpers import SMALL_INVENTORY


@pytest.fixture
def data_dir(tmp_path):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # cli.main sets logging up; put it back after
    yield str(tmp_path / "data")
    root.handlers[:] = handlers
    root.setLevel(level)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_db_upgrade_current_and_downgrade_print_the_revision(data_dir, capsys):
    code, out, _ = run(capsys, "db", "upgrade", "--data-dir", data_dir)
    head = out.strip()
    assert code == 0 and head
    assert run(capsys, "db", "current", "--data-dir", data_dir)[1].strip() == head
    code, out, _ = run(capsys, "db", "downgrade", "--data-dir", data_dir)
    assert code == 0 and out.strip() != head


def test_inventory_generate_load_and_dump_round_trip_with_counts_as_json(data_dir, tmp_path, capsys):
    generated = tmp_path / "gen.yaml"
    assert run(capsys, "inventory", "generate", "--hosts-per-cluster", "1", "-o", str(generated))[0] == 0
    run(capsys, "db", "upgrade", "--data-dir", data_dir)
    code, out, _ = run(capsys, "inventory", "load", str(generated), "--data-dir", data_dir)
    counts = json.loads(out)
    assert code == 0 and counts["hosts"] == 2 and counts["vms"] == 2
    code, out, _ = run(capsys, "inventory", "dump", "--data-dir", data_dir)
    assert code == 0 and len(yaml.safe_load(out)["vms"]) == 2


def test_an_invalid_inventory_or_a_missing_file_argument_exits_2(data_dir, tmp_path, capsys):
    run(capsys, "db", "upgrade", "--data-dir", data_dir)
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL_INVENTORY.read_text().replace("pool: c1-gold", "pool: c1-platinum", 1))
    code, _, err = run(capsys, "inventory", "load", str(bad), "--data-dir", data_dir)
    assert code == 2 and "nothing loaded" in err
    assert run(capsys, "inventory", "load", "--data-dir", data_dir)[0] == 2


def test_keys_create_prints_exactly_the_key_pair_as_json_and_keys_list_never_a_secret(data_dir, capsys):
    code, out, _ = run(capsys, "keys", "create", "--role", "admin", "--json", "--data-dir", data_dir)
    key = json.loads(out)
    assert code == 0 and list(key) == ["apikey", "secretkey"]
    code, out, _ = run(capsys, "keys", "list", "--json", "--data-dir", data_dir)
    assert code == 0 and key["apikey"] in out and key["secretkey"] not in out
    assert run(capsys, "keys", "create", "some-key", "--data-dir", data_dir)[0] == 2


def test_users_create_reads_the_password_from_stdin_and_prints_json(data_dir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    code, out, _ = run(capsys, "users", "create", "carol", "--password-stdin", "--json", "--data-dir", data_dir)
    made = json.loads(out)
    assert code == 0 and made["username"] == "carol" and "password" not in json.dumps(made)
