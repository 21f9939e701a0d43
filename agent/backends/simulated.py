"""The simulated Hyper-V backend: pools are directories, volumes are files, a migration copies bytes.

The real contract it stands in for is the CloudStack Hyper-V agent's handler of
``MigrateVolumeCommand`` (``HypervResourceController`` / ``WmiCallsV2.MigrateVolume``): given the
volume's path, the VM it is attached to (``attachedVmName``) and the destination pool (a
``StorageFilerTO``), the agent finds the VM's disk with that path, sets its new location under
the destination pool and calls WMI ``Msvm_VirtualSystemMigrationService.MigrateVirtualSystemToHost``
with a ``Msvm_VirtualSystemMigrationSettingData`` of ``MigrationType`` Storage (32769). Hyper-V
copies the VHD(X) while the guest keeps running, switches the VM to the new file and only then
deletes the source; on failure the source stays in use and the destination copy is removed. The
answer (``MigrateVolumeAnswer``) carries success, details, and the volume path, which is
unchanged: the file keeps its name, only its pool changes. Hyper-V runs at most
``MaximumStorageMigrations`` (default 2) storage migrations per host and queues the rest; that
queue lives in ``agent.runner``.

Here a pool with path ``/shared/pool-a`` is the directory ``<root>/shared/pool-a``; the copy goes
to ``<name>.partial`` in chunks (``os.copy_file_range``, else ``os.sendfile``, else pread/pwrite),
reports progress, stops between chunks when interrupted, may be throttled to a bandwidth, and is
fsynced and renamed to its final name before the source file is removed.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent.persist import fsync_dir
from agent.validation import PARTIAL_SUFFIX, pool_relative_parts

MIB = 1024 * 1024
DEFAULT_CHUNK_SIZE = MIB
# Errors meaning "this copy primitive does not work for these files": fall back to the next one.
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


class MigrationFailed(Exception):
    """Raised when a migration fails; the partial copy is gone and the source is complete."""


class MigrationInterrupted(Exception):
    """Raised when a migration stops because it was aborted or the agent is stopping."""


class VolumeSizeMismatch(Exception):
    """Raised when a volume file to create already exists with another size."""


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


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # best effort: the caller reports the original failure


class SimulatedHyperV:
    """Volume files under ``root``; one instance per host agent (pools may be shared by hosts)."""

    def __init__(self, root: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 bandwidth_mib_s: float | None = None):
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if bandwidth_mib_s is not None and bandwidth_mib_s <= 0:
            raise ValueError("bandwidth_mib_s must be positive or None")
        self.root = Path(root)
        self.chunk_size = chunk_size
        self.bandwidth_mib_s = bandwidth_mib_s

    def pool_dir(self, pool_path: str) -> Path:
        """The directory of a pool path (validated by ``validation.parse_pool``)."""
        return self.root.joinpath(*pool_relative_parts(pool_path))

    def complete_size(self, pool_path: str, name: str) -> int | None:
        """Size of the complete volume file ``name`` in the pool, or ``None`` if there is none."""
        try:
            st = (self.pool_dir(pool_path) / name).stat()
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def create_volume(self, pool_path: str, name: str, size: int) -> bool:
        """Create ``name`` with ``size`` random bytes; ``False`` if it already exists with that size."""
        directory = self.pool_dir(pool_path)
        final = directory / name
        existing = self.complete_size(pool_path, name)
        if existing is not None:
            if existing != size:
                raise VolumeSizeMismatch(f"volume file {final} already exists with {existing} bytes, not {size}")
            return False
        directory.mkdir(parents=True, exist_ok=True)
        # Written under a hidden temp name, so a half-written file is never taken for a volume.
        tmp = directory / f".{name}.{secrets.token_hex(4)}.creating"
        try:
            with open(tmp, "wb") as fh:
                left = size
                while left:
                    block = os.urandom(min(left, self.chunk_size))
                    fh.write(block)
                    left -= len(block)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, final)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        fsync_dir(directory)
        return True

    def migrate_volume(self, src_pool_path: str, dst_pool_path: str, name: str,
                       progress: Callable[[int, int], None], control: Control) -> None:
        """Move volume file ``name`` from one pool directory to another (see the module docstring)."""
        src = self.pool_dir(src_pool_path) / name
        dst_dir = self.pool_dir(dst_pool_path)
        final, partial = dst_dir / name, dst_dir / (name + PARTIAL_SUFFIX)
        try:
            src_fd = os.open(src, os.O_RDONLY)
        except FileNotFoundError:
            raise MigrationFailed(f"source volume file {src} does not exist") from None
        except OSError as exc:
            raise MigrationFailed(f"cannot open source volume file {src}: {exc.strerror}") from None
        try:
            if final.exists():
                raise MigrationFailed(f"destination volume file {final} already exists")
            self._copy(src_fd, src, dst_dir, partial, progress, control)
        finally:
            os.close(src_fd)
        step = f"renaming {partial} to {final}"
        try:
            os.rename(partial, final)
            fsync_dir(dst_dir)
            step = f"removing source volume file {src}"
            src.unlink()
            fsync_dir(src.parent)
        except OSError as exc:
            # Undo whatever happened so the source is the one complete copy again.
            if src.exists():
                _unlink_quietly(final)
            _unlink_quietly(partial)
            raise MigrationFailed(f"migration of {src} to {dst_dir} failed while {step}: {exc.strerror}") from None

    def _copy(self, src_fd: int, src: Path, dst_dir: Path, partial: Path,
              progress: Callable[[int, int], None], control: Control) -> None:
        step = f"creating destination directory {dst_dir}"
        dst_fd = None
        try:
            dst_dir.mkdir(parents=True, exist_ok=True)
            step = f"opening {partial}"
            dst_fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            total = os.fstat(src_fd).st_size
            progress(0, total)
            copier, done, started = _ChunkCopier(), 0, time.monotonic()
            step = f"copying {src} to {partial}"
            while done < total:
                if control.interrupted():
                    raise MigrationInterrupted()
                copied = copier.copy(src_fd, dst_fd, done, min(self.chunk_size, total - done))
                if copied == 0:
                    raise MigrationFailed(f"source volume file {src} ended at byte {done} of {total}")
                done += copied
                progress(done, total)
                if self.bandwidth_mib_s:
                    ahead = done / (self.bandwidth_mib_s * MIB) - (time.monotonic() - started)
                    if ahead > 0:
                        control.wait(ahead)
            if control.interrupted():
                raise MigrationInterrupted()
            step = f"flushing {partial} to disk"
            os.fsync(dst_fd)
        except OSError as exc:
            self._close_and_discard(dst_fd, partial)
            raise MigrationFailed(f"migration of {src} failed while {step}: {exc.strerror}") from None
        except BaseException:
            self._close_and_discard(dst_fd, partial)
            raise
        os.close(dst_fd)

    @staticmethod
    def _close_and_discard(fd: int | None, partial: Path) -> None:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        _unlink_quietly(partial)

    def discard_partial(self, dst_pool_path: str, name: str) -> None:
        """Remove a partial destination copy left by an interrupted migration, if any."""
        _unlink_quietly(self.pool_dir(dst_pool_path) / (name + PARTIAL_SUFFIX))

    def recover_interrupted(self, src_pool_path: str, dst_pool_path: str, name: str) -> bool:
        """Clean up after a migration cut short by a crash; ``True`` if it had in fact completed.

        The partial copy is removed. If the rename to the final name happened but the source was
        not yet removed, both are complete: the destination copy is removed (the command fails,
        the source stays). If the source is already gone, the migration completed.
        """
        self.discard_partial(dst_pool_path, name)
        src = self.pool_dir(src_pool_path) / name
        final = self.pool_dir(dst_pool_path) / name
        if final.is_file() and not src.exists():
            return True
        if final.is_file():
            _unlink_quietly(final)
        return False
