"""The agent's durable files: atomic JSON writes that old and new agents both read."""
from __future__ import annotations

import ctypes
import errno
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


def inodes(directory):
    return {p.name: p.stat().st_ino for p in directory.iterdir()}


def test_a_rewrite_swaps_in_the_new_version_and_keeps_the_old_one_as_the_next_temp_file(tmp_path):
    assert persist._renameat2 is not None  # Linux with glibc 2.28 or later, as the agent's hosts
    write_json_atomic(tmp_path / "x.json", {"v": 1})
    write_json_atomic(tmp_path / "x.json", {"v": 2})
    [tmp] = [name for name in os.listdir(tmp_path) if name != "x.json"]
    assert tmp.startswith(".x.json.") and tmp.endswith(".tmp")
    assert read_json(tmp_path / tmp) == {"v": 1}
    pair = set(inodes(tmp_path).values())
    for v in range(3, 8):  # neither a new inode nor a freed one: the two files trade places
        write_json_atomic(tmp_path / "x.json", {"v": v})
        assert read_json(tmp_path / "x.json") == {"v": v}
        assert set(inodes(tmp_path).values()) == pair
    assert read_json(tmp_path / tmp) == {"v": 6}


def test_without_the_swap_a_rewrite_renames_over_the_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    monkeypatch.setattr(persist, "_renameat2", None)
    for v in range(3):
        write_json_atomic(tmp_path / "x.json", {"v": v})
    assert read_json(tmp_path / "x.json") == {"v": 2}
    assert os.listdir(tmp_path) == ["x.json"]


def write_three_times_with_a_swap_that_fails(tmp_path, monkeypatch, error: int) -> tuple[list, bool]:
    """Three writes of x.json while ``renameat2`` fails with ``error``: the calls it got, and
    whether the swap is still tried; the file must hold the last write and no temp file be left."""
    calls = []

    def fails(*args):
        calls.append(args)
        ctypes.set_errno(error)
        return -1

    monkeypatch.setattr(persist, "_renameat2", fails)
    for v in (1, 2, 3):
        write_json_atomic(tmp_path / "x.json", {"v": v})
    assert read_json(tmp_path / "x.json") == {"v": 3}
    assert os.listdir(tmp_path) == ["x.json"]
    return calls, persist._renameat2 is fails


def test_a_file_system_that_cannot_swap_is_written_by_rename_from_then_on(tmp_path, monkeypatch):
    calls, still_tried = write_three_times_with_a_swap_that_fails(tmp_path, monkeypatch, errno.EINVAL)
    assert len(calls) == 1 and not still_tried


def test_a_rewrite_is_fsynced_before_the_swap_and_the_directory_after_it(tmp_path, monkeypatch):
    write_json_atomic(tmp_path / "x.json", {"v": 1})
    calls = []
    real_fsync, real_exchange, real_replace = os.fsync, persist.exchange, os.replace
    monkeypatch.setattr(persist.os, "fsync", lambda fd: (calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                         real_fsync(fd)))
    monkeypatch.setattr(persist, "exchange", lambda a, b: (calls.append(("exchange", b)), real_exchange(a, b))[1])
    monkeypatch.setattr(persist.os, "replace", lambda a, b: (calls.append(("replace", b)), real_replace(a, b)))
    write_json_atomic(tmp_path / "x.json", {"v": 2})
    expected = ["fsync", "exchange", "fsync"] if persist._renameat2 is not None else ["fsync", "exchange", "replace",
                                                                                         "fsync"]
    assert [c[0] for c in calls] == expected
    assert calls[0][1].endswith(".tmp") and calls[-1][1] == str(tmp_path)
    assert read_json(tmp_path / "x.json") == {"v": 2}


def test_a_callers_spare_temp_file_serves_all_its_files(tmp_path):
    spare = str(tmp_path / ".spare.1.tmp")
    for name in ("a", "b", "c"):  # each written twice, as a command's record is
        write_json_atomic(tmp_path / f"{name}.json", {"state": "running"}, spare)
        write_json_atomic(tmp_path / f"{name}.json", {"state": "done"}, spare)
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if not n.startswith(".")] == ["a.json", "b.json", "c.json"]
    assert set(names) - {"a.json", "b.json", "c.json"} <= {".spare.1.tmp"}
    assert all(read_json(tmp_path / f"{n}.json") == {"state": "done"} for n in "abc")


def test_the_temp_files_earlier_processes_left_are_removed_for_the_files_owner(tmp_path):
    for name in (".x.json.123.tmp", ".x.json.456.tmp", ".y.json.123.tmp", "x.json"):
        (tmp_path / name).write_text("{}")
    persist.remove_temps(tmp_path / "x.json")
    assert sorted(os.listdir(tmp_path)) == [".y.json.123.tmp", "x.json"]


def test_the_registries_remove_their_files_old_temp_files_at_start(tmp_path):
    from agent.registry import Registry
    from agent.vms import VmRegistry

    stale = [".pools.json.1.tmp", ".volumes.json.1.tmp", ".vms.json.1.tmp"]
    for name in stale:
        (tmp_path / name).write_text('{"old": true}')
    Registry(tmp_path)
    VmRegistry(tmp_path, "h1")
    assert not set(stale) & set(os.listdir(tmp_path))


def test_a_swap_that_fails_otherwise_falls_back_to_the_rename_for_that_write_only(tmp_path, monkeypatch):
    calls, still_tried = write_three_times_with_a_swap_that_fails(tmp_path, monkeypatch, errno.EXDEV)
    assert len(calls) == 3 and still_tried  # asked again each time
