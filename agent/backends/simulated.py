"""The simulated Hyper-V backend: pools are directories, volumes are files, a migration copies bytes.

The real contract it stands in for is the CloudStack Hyper-V agent's handling of
``MigrateVolumeCommand`` and ``MigrateWithStorageCommand`` (``HypervResourceController`` /
``WmiCallsV2``): the agent finds the VM's disks, sets their new locations under the destination
pools and calls WMI ``Msvm_VirtualSystemMigrationService.MigrateVirtualSystemToHost`` - with a
``Msvm_VirtualSystemMigrationSettingData`` of ``MigrationType`` Storage (32769) for a volume, or
VirtualSystemAndStorage (32771, a "shared-nothing" live migration) for a VM and its volumes.
Hyper-V copies the VHD(X) files while the guest keeps running (mirroring its writes, see
``copying``), switches the VM to the new files and only then deletes the sources; on failure the
sources stay in use and the destination copies are removed. File names never change, only
pools. Hyper-V runs at most ``MaximumStorageMigrations`` (default 2) storage migrations per host
and queues the rest; that queue lives in ``agent.slots``.

Here a pool with path ``/shared/pool-a`` is the directory ``<root>/shared/pool-a``. A pool is
*offline* (an SMB share gone away) while the marker file ``<pool dir>/.offline`` exists; every
agent process sharing the root sees it. Copies to or from an offline pool fail, new volume
files cannot be created in it and guests cannot write to it.

With ``zero_copy`` (a benchmark switch, see ``zerocopy``) a migration hard-links the volume file
into the destination pool instead of copying its bytes, so it completes at once.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import stat
import time
from pathlib import Path

from agent.backends.copying import (  # noqa: F401  (re-exported: the backend's public names)
    MIB,
    Control,
    MigrationFailed,
    MigrationInterrupted,
    Mirror,
    _ChunkCopier,
    unlink_quietly,
)
from agent.backends.guest import Disk
from agent.backends.zerocopy import LinkMirror
from agent.persist import fsync_dir
from agent.validation import PARTIAL_SUFFIX, pool_relative_parts

DEFAULT_CHUNK_SIZE = MIB
OFFLINE_MARKER = ".offline"
OFFLINE_CHECK_INTERVAL = 0.05  # seconds between two looks at the pools' offline markers during a copy


class VolumeSizeMismatch(Exception):
    """Raised when a volume file to create already exists with another size."""


class PoolOffline(Exception):
    """Raised when a volume file is to be created in a pool that is offline."""


class SimulatedHyperV:
    """Volume files under ``root``; one instance per host agent (pools may be shared by hosts)."""

    def __init__(self, root: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 bandwidth_mib_s: float | None = None, zero_copy: bool = False):
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if bandwidth_mib_s is not None and bandwidth_mib_s <= 0:
            raise ValueError("bandwidth_mib_s must be positive or None")
        self.root = Path(root)
        self.chunk_size = chunk_size
        self.bandwidth_mib_s = bandwidth_mib_s
        self.zero_copy = zero_copy

    def pool_dir(self, pool_path: str) -> Path:
        """The directory of a pool path (validated by ``validation.parse_pool``)."""
        return self.root.joinpath(*pool_relative_parts(pool_path))

    def volume_file(self, pool: dict, name: str) -> Path:
        return self.pool_dir(pool["path"]) / name

    # -- pools online / offline ----------------------------------------------------------------

    def is_offline(self, pool: dict) -> bool:
        return (self.pool_dir(pool["path"]) / OFFLINE_MARKER).exists()

    def set_offline(self, pool_path: str, offline: bool) -> None:
        """Take a pool offline (create its marker) or bring it back online (remove it)."""
        directory = self.pool_dir(pool_path)
        directory.mkdir(parents=True, exist_ok=True)
        if offline:
            (directory / OFFLINE_MARKER).touch()
        else:
            unlink_quietly(directory / OFFLINE_MARKER)
        fsync_dir(directory)

    def offline_error(self, src: dict, dst: dict) -> str | None:
        """Why a copy between these pools cannot go on now, or ``None`` when both are online."""
        for role, pool in (("source", src), ("destination", dst)):
            if self.is_offline(pool):
                return f"{role} pool {pool['uuid']} ({pool['path']}) is offline"
        return None

    # -- volume files --------------------------------------------------------------------------

    def complete_size(self, pool_path: str, name: str) -> int | None:
        """Size of the complete volume file ``name`` in the pool, or ``None`` if there is none."""
        try:
            st = (self.pool_dir(pool_path) / name).stat()
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def checksum(self, pool_path: str, name: str) -> str | None:
        """sha256 (hex) of the volume file, or ``None`` if it cannot be read."""
        digest = hashlib.sha256()
        try:
            with open(self.pool_dir(pool_path) / name, "rb") as fh:
                for block in iter(lambda: fh.read(MIB), b""):
                    digest.update(block)
        except OSError:
            return None
        return digest.hexdigest()

    def create_volume(self, pool: dict, name: str, size: int) -> bool:
        """Create ``name`` with ``size`` random bytes; ``False`` if it already exists with that size."""
        directory = self.pool_dir(pool["path"])
        final = directory / name
        existing = self.complete_size(pool["path"], name)
        if existing is not None:
            if existing != size:
                raise VolumeSizeMismatch(f"volume file {final} already exists with {existing} bytes, not {size}")
            return False
        if self.is_offline(pool):
            raise PoolOffline(f"pool {pool['uuid']} ({pool['path']}) is offline")
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
            unlink_quietly(tmp)
            raise
        fsync_dir(directory)
        return True

    # -- migrations ----------------------------------------------------------------------------

    def mirror(self, disk: Disk | None, src: dict, dst: dict, name: str, control: Control, *,
               bandwidth_mib_s: float | None = None) -> Mirror:
        """A ``Mirror`` of ``name`` from pool ``src`` to pool ``dst``.

        ``disk`` is the volume's disk when a guest runs on it here (its writes are mirrored);
        ``None`` for a volume no running VM of this host uses. ``bandwidth_mib_s`` overrides the
        backend's bandwidth (a ``slow`` fault). In zero-copy mode it is a ``LinkMirror``.
        """
        if disk is None or disk.path != self.volume_file(src, name):
            disk = Disk("(no guest)", self.volume_file(src, name), src)

        last_look = [0.0]

        def check() -> None:
            if control.interrupted():
                raise MigrationInterrupted()
            # The pools' markers are looked at every OFFLINE_CHECK_INTERVAL at most: a bulk step
            # takes milliseconds, and two stat calls a step were a tenth of a fast copy's time.
            now = time.monotonic()
            if now - last_look[0] < OFFLINE_CHECK_INTERVAL:
                return
            last_look[0] = now
            error = self.offline_error(src, dst)
            if error:
                raise MigrationFailed(f"migration of {self.volume_file(src, name)} to pool {dst['uuid']} "
                                      f"failed: {error}")

        kind = LinkMirror if self.zero_copy else Mirror
        return kind(disk, self.pool_dir(src["path"]), self.pool_dir(dst["path"]), name,
                      chunk_size=self.chunk_size, bandwidth_mib_s=bandwidth_mib_s or self.bandwidth_mib_s,
                      control=control, check=check)

    def discard_partial(self, dst_pool_path: str, name: str) -> None:
        """Remove a partial destination copy left by an interrupted migration, if any."""
        unlink_quietly(self.pool_dir(dst_pool_path) / (name + PARTIAL_SUFFIX))

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
            unlink_quietly(final)
        return False
