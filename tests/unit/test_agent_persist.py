"""The agent's durable files: atomic JSON writes that old and new agents both read."""
from __future__ import annotations

import json
import os

import pytest

from agent import persist
from agent.persist import read_json, write_json_atomic


def test_a_written_file_reads_back_as_the_same_data_and_leaves_no_temp_file(tmp_path):
    data = {"b": [1, 2.5, None, True], "a": {"z": "ü", "y": ""}}
    write_json_atomic(tmp_path / "x.json", data)
    assert read_json(tmp_path / "x.json") == data
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8")) == data  # plain JSON, any reader
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_keys_are_written_sorted_so_files_diff_cleanly(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"b": 1, "a": 2})
    text = (tmp_path / "x.json").read_text()
    assert text.index('"a"') < text.index('"b"')


def test_a_missing_directory_is_created_on_the_first_write(tmp_path):
    write_json_atomic(tmp_path / "new" / "deeper" / "x.json", {"a": 1})
    assert read_json(tmp_path / "new" / "deeper" / "x.json") == {"a": 1}


def test_integers_beyond_64_bits_are_written_too(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"big": 2 ** 70})
    assert read_json(tmp_path / "x.json") == {"big": 2 ** 70}


def test_a_file_written_by_the_old_indented_writer_is_read(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"record": {"id": "x"}}, indent=1, sort_keys=True))
    assert read_json(tmp_path / "old.json") == {"record": {"id": "x"}}
    assert read_json(tmp_path / "absent.json", {}) == {}


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(tmp_path, monkeypatch):
    write_json_atomic(tmp_path / "x.json", {"v": 1})

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(persist.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_json_atomic(tmp_path / "x.json", {"v": 2})
    assert read_json(tmp_path / "x.json") == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["x.json"]


def test_a_write_is_fsynced_before_the_rename_and_the_directory_after_it(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(persist.os, "fsync", lambda fd: (calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                         real_fsync(fd)))
    monkeypatch.setattr(persist.os, "replace", lambda a, b: (calls.append(("replace", b)), real_replace(a, b)))
    write_json_atomic(tmp_path / "x.json", {"v": 1})
    assert [c[0] for c in calls] == ["fsync", "replace", "fsync"]
    assert calls[0][1].endswith(".tmp") and calls[2][1] == str(tmp_path)
