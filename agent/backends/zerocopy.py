"""Zero-copy mode of the simulated backend: a migration links the volume file instead of copying it.

For pipeline benchmarks, where what is measured is everything around the copy (API, queue,
database, worker, agent protocol), not the copy itself. It stands in for no real Hyper-V
behaviour: it is a test and benchmark switch (``--zero-copy``, ``zero_copy=True``), off by default.

A ``LinkMirror`` goes through the same steps as ``Mirror`` and leaves the same files behind, in
the same order, so every guarantee and every recovery path holds unchanged: the "partial copy"
``<name>.partial`` is a hard link to the source (complete at once, and the guest's writes land in
it too since it is the same inode, so there is nothing to re-copy); the switch-over renames it to
``<name>`` and fsyncs the directory; the source name is then removed. Removing a partial or
renamed link never touches the source's data. When the pools are on different file systems (or
the file system has no hard links), it falls back to a real copy, without throttling.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable

from agent.backends.copying import MigrationFailed, Mirror, unlink_quietly
from agent.persist import fsync_dir

# Errors meaning "no hard link between these files": copy the bytes instead.
_NO_LINK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


class LinkMirror(Mirror):
    """A ``Mirror`` whose bulk copy is one hard link (see the module docstring)."""

    linked = False

    def open(self) -> None:
        """Check the source and the destination as ``Mirror.open`` does, then link the partial copy."""
        try:
            self.total = os.stat(self.src).st_size
        except FileNotFoundError:
            raise MigrationFailed(f"source volume file {self.src} does not exist") from None
        except OSError as exc:
            raise MigrationFailed(f"cannot open source volume file {self.src}: {exc.strerror}") from None
        if self.final.exists():
            raise MigrationFailed(f"destination volume file {self.final} already exists")
        try:
            self._step = f"creating destination directory {self.dst_dir}"
            self.dst_dir.mkdir(parents=True, exist_ok=True)
            self._step = f"linking {self.src} to {self.partial}"
            unlink_quietly(self.partial)  # a stale partial copy of an earlier, interrupted attempt
            os.link(self.src, self.partial)
            self.linked = True
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise self._fail(exc) from None
        if not self.linked:  # pools on different file systems: copy the bytes after all
            self._rate = None
            super().open()
            return
        self._check()

    def bulk(self, progress: Callable[[], None]) -> None:
        if not self.linked:
            return super().bulk(progress)
        self._check()
        self.done = self.total
        progress()

    def converge(self, progress: Callable[[], None]) -> None:
        if not self.linked:
            return super().converge(progress)
        self._check()  # one inode: the guest's writes are already in the destination

    def switch_over(self) -> None:
        if not self.linked:
            return super().switch_over()
        try:
            self._step = f"renaming {self.partial} to {self.final}"
            os.rename(self.partial, self.final)
            self.renamed = True
            fsync_dir(self.dst_dir)
        except OSError as exc:
            raise self._fail(exc) from None
