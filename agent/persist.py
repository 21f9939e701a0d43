"""Small durable-file helpers: atomic JSON writes (temp file + fsync + rename) and tolerant reads.

Everything the agent keeps across restarts (command records, volume and pool registries) goes
through ``write_json_atomic`` so a crash leaves either the old or the new file, never half of one.
A durable write is on the path of every command (several per migration), so it is kept cheap:
orjson encodes (C; the standard library's encoder is pure Python as soon as it indents), and the
temp file has a fixed name per file and process (``.<name>.<pid>.tmp``, or a caller's ``spare``)
instead of a ``mkstemp`` name, since every caller serializes the writes of one file (the owner's
lock); its directory is created only when the open says it is missing.

A file that exists already is replaced by swapping the two names in one step (Linux's
``renameat2`` with ``RENAME_EXCHANGE``), not by renaming over it: the old version then stays as
the temp file, and the next write reuses it. So rewriting a file neither creates nor frees an
inode. Replacing one does both, and on ext4 without a journal every new inode skips the inodes
freed in the last 30 seconds one by one: with a few rewrites per migration that search alone
took half of the agent's CPU (docs/benchmarks.md, section 1). Where the swap is not available
(another system, a file system without it) the write renames over the file as before. Temp
files are not data: whoever lists a directory ignores ``.*.tmp`` and may remove them at start.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


def _find_renameat2():
    """glibc's ``renameat2`` (2.28 and later), or None on other systems."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _find_renameat2()


def utc_now_iso() -> str:
    """The current time as ISO-8601 UTC with milliseconds, e.g. ``2026-11-25T19:00:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fsync_dir(directory: Path | str) -> None:
    """Make a rename or unlink inside ``directory`` durable (best effort where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def encode_json(data: Any) -> bytes:
    """``data`` as indented JSON with sorted keys (orjson; the standard library for what orjson
    refuses, such as integers beyond 64 bits)."""
    try:
        return orjson.dumps(data, option=_OPTIONS)
    except TypeError:
        return json.dumps(data, indent=1, sort_keys=True).encode()


def exchange(tmp: str, path: str) -> bool:
    """Swap the names ``tmp`` and ``path`` in one atomic step. False, with nothing changed, when
    ``path`` does not exist or the swap fails for any other reason: the caller renames, and a
    real problem (permissions, the disk) shows there. A system or file system that cannot swap at
    all is not asked again."""
    global _renameat2
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        _renameat2 = None  # not here: rename from now on
    return False


def write_json_atomic(path: Path | str, data: Any, spare: str | None = None) -> None:
    """Write ``data`` as JSON to ``path`` via a temp file in the same directory and a rename (or,
    when ``path`` exists, a swap: the old version stays as the temp file for the next write).

    Writes of one ``path`` must not run concurrently (the temp file's name is fixed per process);
    ``spare``, a temp file name of the caller's in the same directory, shared by the files it
    writes one at a time (the command store's: one file per command, each written a few times).
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp = spare or os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    body = encode_json(data)
    try:
        fd = os.open(tmp, _TMP_FLAGS, 0o600)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(tmp, _TMP_FLAGS, 0o600)
    try:
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if not exchange(tmp, path):
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def remove_temps(path: Path | str) -> None:
    """Remove the temp files of ``path`` that earlier processes left (old versions, or what a
    crash mid-write left); for an owner of the file, before its first write."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def read_json(path: Path | str, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it does not exist."""
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read())
    except FileNotFoundError:
        return default
