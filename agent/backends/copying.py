"""Copying one volume file to another pool while its guest keeps writing: a storage migration's mirror.

Hyper-V's storage migration (the contract this stands in for) copies a running VM's VHDX in three
steps: a bulk copy of the whole file while the guest keeps writing to the source; copying again
the blocks written meanwhile, pass after pass, until what is left is small; then a short
switch-over in which guest I/O is paused, the last dirty blocks are copied, the VM is pointed at
the new file and the source is deleted. A failure before the switch-over leaves the VM on the
source and deletes the destination copy.

``Mirror`` does that for one file. The copy goes to ``<name>.partial`` in chunks with the most
efficient primitive that works (``os.copy_file_range``, else ``os.sendfile``, else pread/pwrite),
reports progress, stops between chunks (and within a throttle pause) when interrupted or when a
pool goes offline, and learns which chunks the guest dirtied through the volume's ``Disk``.

The copy is fsynced before it is renamed into place. So that this last fsync does not have the
whole file left to write (a copy to the page cache followed by one long flush, as ``cp`` then
``sync``), the bulk copy writes behind itself: each chunk is handed to the disk as soon as it is
copied (Linux ``sync_file_range``), and the copy waits for the bytes ``WRITE_BEHIND`` behind it,
so copying and writing to disk overlap and a large copy never fills the page cache with dirty
pages. Where ``sync_file_range`` is missing or refused, the copy goes on without it. An
unthrottled bulk copy also goes in steps of ``BULK_STEP`` chunks, to spend less time between
copy calls; a throttled one keeps to one chunk per step, for smooth pacing and progress.
"""
from __future__ import annotations

import ctypes
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent.backends.guest import Disk
from agent.persist import fsync_dir

MIB = 1024 * 1024
# Errors meaning "this copy primitive does not work for these files": fall back to the next one.
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}
CHECK_INTERVAL = 0.2  # seconds; a throttle pause is cut into slices this long to notice aborts/offline
SWITCH_OVER_CHUNKS = 4  # dirty chunks small enough to copy while guest I/O is paused
MAX_PASSES = 10  # re-copy passes before switching over anyway (the remainder is copied paused)
WRITE_BEHIND = 32 * 1024 * 1024  # bytes copied ahead of the oldest byte not yet on disk
BULK_STEP = 8  # chunks per copy call of an unthrottled bulk copy (fewer trips through the loop)
# sync_file_range(2) flags
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4
_sync_file_range = None  # resolved on first use: libc's sync_file_range, or False where there is none


def _range_syncer():
    """libc's ``sync_file_range`` (Linux), or ``None``; looked up once, on first use."""
    global _sync_file_range
    if _sync_file_range is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).sync_file_range
            fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _sync_file_range = fn
        except (OSError, AttributeError):
            _sync_file_range = False
    return _sync_file_range or None


class MigrationFailed(Exception):
    """Raised when a migration fails; the partial copy is gone and the source is complete."""


class MigrationInterrupted(Exception):
    """Raised when a migration stops because it was aborted or the agent is stopping."""


class Control(Protocol):
    """What the copy loop asks its command between chunks."""

    def interrupted(self) -> bool: ...

    def wait(self, seconds: float) -> None: ...  # returns early once interrupted


class _ChunkCopier:
    """Copies one chunk at a time with the most efficient primitive that works for these files."""

    def __init__(self) -> None:
        self.methods = [m for m in ("copy_file_range", "sendfile") if hasattr(os, m)] + ["pread"]

    def copy(self, src_fd: int, dst_fd: int, offset: int, count: int) -> int:
        while True:
            method = self.methods[0]
            try:
                if method == "copy_file_range":
                    return os.copy_file_range(src_fd, dst_fd, count, offset, offset)
                if method == "sendfile":
                    os.lseek(dst_fd, offset, os.SEEK_SET)  # sendfile writes at dst's position
                    return os.sendfile(dst_fd, src_fd, offset, count)
                data = os.pread(src_fd, count, offset)
                return os.pwrite(dst_fd, data, offset) if data else 0
            except OSError as exc:
                if exc.errno in _FALLBACK_ERRNOS and len(self.methods) > 1:
                    self.methods.pop(0)
                    continue
                raise


def unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass  # best effort: the caller reports the original failure


class Mirror:
    """Mirror one volume file from ``src_dir`` to ``dst_dir`` (see the module docstring).

    ``check()`` raises ``MigrationInterrupted`` or ``MigrationFailed`` (a pool went offline); it is
    called between chunks. ``bandwidth_mib_s`` throttles bulk copy and re-copies together.
    """

    def __init__(self, disk: Disk, src_dir: Path, dst_dir: Path, name: str, *, chunk_size: int,
                 bandwidth_mib_s: float | None, control: Control, check: Callable[[], None]):
        self.disk, self.name, self.chunk_size = disk, name, chunk_size
        self.src, self.dst_dir = src_dir / name, dst_dir
        self.final, self.partial = dst_dir / name, dst_dir / (name + ".partial")
        self.total = self.done = self.recopied = 0
        self.renamed = False
        self._rate = bandwidth_mib_s * MIB if bandwidth_mib_s else None
        self._control, self._check = control, check
        self._src_fd = self._dst_fd = None
        self._copier = _ChunkCopier()
        self._paced, self._started = 0, time.monotonic()
        self._step = ""
        self._syncer = _range_syncer()

    def _fail(self, exc: OSError) -> MigrationFailed:
        return MigrationFailed(f"migration of {self.src} failed while {self._step}: {exc.strerror}")

    def open(self) -> None:
        """Open the source, refuse to overwrite a destination file, create the partial copy."""
        try:
            self._src_fd = os.open(self.src, os.O_RDONLY)
        except FileNotFoundError:
            raise MigrationFailed(f"source volume file {self.src} does not exist") from None
        except OSError as exc:
            raise MigrationFailed(f"cannot open source volume file {self.src}: {exc.strerror}") from None
        if self.final.exists():
            raise MigrationFailed(f"destination volume file {self.final} already exists")
        try:
            self._step = f"creating destination directory {self.dst_dir}"
            self.dst_dir.mkdir(parents=True, exist_ok=True)
            self._step = f"opening {self.partial}"
            self._dst_fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            self.total = os.fstat(self._src_fd).st_size
        except OSError as exc:
            raise self._fail(exc) from None
        with self.disk.lock:
            self.disk.track(self.chunk_size)  # from now on guest writes are remembered
        self._check()

    def _copy_range(self, offset: int, count: int) -> int:
        copied = 0
        while copied < count:
            n = self._copier.copy(self._src_fd, self._dst_fd, offset + copied, count - copied)
            if n == 0:
                raise MigrationFailed(f"source volume file {self.src} ended at byte {offset + copied} of {self.total}")
            copied += n
        return copied

    def _pace(self, copied: int) -> None:
        self._paced += copied
        while self._rate:
            ahead = self._paced / self._rate - (time.monotonic() - self._started)
            if ahead <= 0:
                return
            self._control.wait(min(ahead, CHECK_INTERVAL))
            self._check()

    def bulk(self, progress: Callable[[], None]) -> None:
        """Copy the whole file once, chunk by chunk, calling ``progress()`` after each chunk."""
        self._step = f"copying {self.src} to {self.partial}"
        step = self.chunk_size * (1 if self._rate else BULK_STEP)
        try:
            while self.done < self.total:
                self._check()
                copied = self._copy_range(self.done, min(step, self.total - self.done))
                self._write_behind(self.done, copied)
                self.done += copied
                progress()
                self._pace(copied)
        except OSError as exc:
            raise self._fail(exc) from None

    def _write_behind(self, offset: int, count: int) -> None:
        """Hand ``[offset, offset + count)`` to the disk now, and wait for the bytes ``WRITE_BEHIND``
        before it to be on it (see the module docstring). Only a speed-up: never an error."""
        if self._syncer is None:
            return
        back = max(0, offset - WRITE_BEHIND)
        if (self._syncer(self._dst_fd, offset, count, _WRITE) != 0 or
                (offset >= WRITE_BEHIND and self._syncer(self._dst_fd, back, count,
                                                         _WAIT_BEFORE | _WRITE | _WAIT_AFTER) != 0)):
            self._syncer = None  # refused here (e.g. not a regular file system): copy without it

    def converge(self, progress: Callable[[], None]) -> None:
        """Copy the chunks written meanwhile, pass after pass, until few enough are left.

        It stops early when a pass did not shrink the dirty set (the guest writes faster than
        the copy catches up); the switch-over then copies the rest with guest I/O paused.
        """
        self._step = f"copying blocks written during the copy of {self.src} to {self.partial}"
        small = max(SWITCH_OVER_CHUNKS, self.total // self.chunk_size // 16)
        previous = None
        self._check()  # an abort or an offline pool stops the migration here at the latest
        try:
            for _ in range(MAX_PASSES):
                with self.disk.lock:
                    pending = len(self.disk.dirty or ())
                    if pending <= small or (previous is not None and pending >= previous):
                        return
                    chunks = self.disk.take_dirty()
                previous = pending
                for chunk in sorted(chunks):
                    self._check()
                    copied = self._recopy(chunk)
                    self.recopied += copied
                    progress()
                    self._pace(copied)
        except OSError as exc:
            raise self._fail(exc) from None

    def _recopy(self, chunk: int) -> int:
        offset = chunk * self.chunk_size
        return self._copy_range(offset, min(self.chunk_size, self.total - offset)) if offset < self.total else 0

    def switch_over(self) -> None:
        """Copy the last dirty chunks, flush, and rename into place. Caller holds ``disk.lock``."""
        try:
            self._step = f"copying the last blocks written to {self.src}"
            for chunk in sorted(self.disk.take_dirty()):
                self.recopied += self._recopy(chunk)
            self._step = f"flushing {self.partial} to disk"
            os.fsync(self._dst_fd)
            os.close(self._dst_fd)
            self._dst_fd = None
            self._step = f"renaming {self.partial} to {self.final}"
            os.rename(self.partial, self.final)
            self.renamed = True
            fsync_dir(self.dst_dir)
        except OSError as exc:
            raise self._fail(exc) from None

    def remove_source(self, dst_pool: dict) -> None:
        """Delete the source and point the disk at the copy. Caller holds ``disk.lock``."""
        self._close()
        self._step = f"removing source volume file {self.src}"
        try:
            self.src.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fail(exc) from None
        fsync_dir(self.src.parent)
        self.disk.untrack()
        self.disk.path, self.disk.pool = self.final, dst_pool

    def discard(self) -> None:
        """Undo: remove the partial copy (and the renamed copy while the source still exists)."""
        self._close()
        unlink_quietly(self.partial)
        if self.renamed and self.src.exists():
            unlink_quietly(self.final)
            self.renamed = False
        with self.disk.lock:
            self.disk.untrack()

    def _close(self) -> None:
        for attr in ("_src_fd", "_dst_fd"):
            fd = getattr(self, attr)
            if fd is not None:
                setattr(self, attr, None)
                try:
                    os.close(fd)
                except OSError:
                    pass
