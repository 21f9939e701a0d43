"""Small durable-file helpers: atomic JSON writes (temp file + fsync + rename) and tolerant reads.

Everything the agent keeps across restarts (command records, volume and pool registries) goes
through ``write_json_atomic`` so a crash leaves either the old or the new file, never half of one.
A durable write is on the path of every command (several per migration), so it is kept cheap:
orjson encodes (C; the standard library's encoder is pure Python as soon as it indents), and the
temp file has a fixed name per file and process (``.<name>.<pid>.tmp``) instead of a
``mkstemp`` name, since every caller serializes the writes of one file (the owner's lock); its
directory is created only when the open says it is missing.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


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


def write_json_atomic(path: Path | str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temp file in the same directory and a rename.

    Writes of one ``path`` must not run concurrently (the temp file's name is fixed per process).
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
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
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def read_json(path: Path | str, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it does not exist."""
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read())
    except FileNotFoundError:
        return default
