"""The simulated guests of running VMs: their virtual disks, their writes and the write log.

Real contract: a VM running on Hyper-V keeps writing to its VHDX files; during a storage
migration Hyper-V's virtual storage stack mirrors those writes (it tracks the blocks written
while the copy runs and copies them again), so no guest write is lost when the VM switches to
the new file. Here every volume of a VM registered on a host has a ``Disk``: the file the guest
writes to now, a lock that the switch-over takes to pause guest I/O, and - while a migration
mirrors it - the set of chunks written since the mirror last looked.

``Guest`` writes, when enabled (``writes_per_second`` > 0; off by default), one block of
``block_size`` bytes at a random block-aligned offset of each disk per tick. Each write gets the
next sequence number of the host's ``WriteLog``; its data is ``guest_data(volume_id, seq,
length)``, so anyone can replay the log and prove the destination holds every write, in order.
A write to a retired disk (its VM left this host) or an offline pool is skipped, not logged.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
from pathlib import Path

from agent.persist import utc_now_iso

log = logging.getLogger(__name__)

DEFAULT_BLOCK_SIZE = 4096


def guest_data(volume_id: str, seq: int, length: int) -> bytes:
    """The bytes of guest write ``seq`` to ``volume_id``: sha256("<volume id>:<seq>") repeated."""
    digest = hashlib.sha256(f"{volume_id}:{seq}".encode()).digest()
    return (digest * (length // len(digest) + 1))[:length]


class Disk:
    """One volume of a running VM: where its file is now, and the chunks dirtied during a mirror.

    ``lock`` guards everything here; guest writes hold it for one write, a switch-over for the
    whole switch. ``dirty`` is ``None`` unless a migration is mirroring the disk.
    """

    def __init__(self, volume_id: str, path: Path, pool: dict):
        self.lock = threading.Lock()
        self.volume_id = volume_id
        self.path = path
        self.pool = pool
        self.retired = False
        self.dirty: set[int] | None = None
        self.chunk_size = 0

    def track(self, chunk_size: int) -> None:
        """Start recording dirtied chunks (caller holds ``lock``)."""
        self.dirty, self.chunk_size = set(), chunk_size

    def untrack(self) -> None:
        """Stop recording dirtied chunks (caller holds ``lock``)."""
        self.dirty = None

    def take_dirty(self) -> set[int]:
        """The chunks dirtied since the last call, and start a new set (caller holds ``lock``)."""
        chunks, self.dirty = self.dirty or set(), set()
        return chunks

    def mark(self, offset: int, length: int) -> None:
        """Record a write to ``[offset, offset + length)`` (caller holds ``lock``)."""
        if self.dirty is not None and length > 0:
            first, last = offset // self.chunk_size, (offset + length - 1) // self.chunk_size
            self.dirty.update(range(first, last + 1))


class WriteLog:
    """The guest writes made on one host, in sequence order, kept in memory and in a JSONL file."""

    def __init__(self, path: Path):
        self._path = path
        self._lock = threading.Lock()
        self._entries: list[dict] = []
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    self._entries.append(json.loads(line))
                except ValueError:
                    break  # a torn last line after a crash
        self._seq = max((e["seq"] for e in self._entries), default=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def next_seq(self) -> int:
        """Reserve a sequence number (numbers of writes that did not happen are skipped)."""
        with self._lock:
            self._seq += 1
            return self._seq

    def append(self, entry: dict) -> None:
        with self._lock:
            self._entries.append(entry)
            if not self._file.closed:
                self._file.write(json.dumps(entry, sort_keys=True) + "\n")
                self._file.flush()

    def entries(self, volume_id: str, since: int = 0) -> list[dict]:
        """The writes to one volume with a sequence number above ``since``, oldest first."""
        with self._lock:
            return [dict(e) for e in self._entries if e["volume"] == volume_id and e["seq"] > since]

    def last_seq(self) -> int:
        with self._lock:
            return self._seq

    def close(self) -> None:
        with self._lock:
            self._file.close()


class Guest:
    """The guests of the VMs running on one host: their disks and the thread that writes to them."""

    def __init__(self, host: str, write_log: WriteLog, *, writes_per_second: float = 0.0,
                 block_size: int = DEFAULT_BLOCK_SIZE, is_offline=lambda pool: False):
        self.host = host
        self.log = write_log
        self.block_size = block_size
        self._is_offline = is_offline
        self._lock = threading.Lock()
        self._disks: dict[str, Disk] = {}
        self._vm_of: dict[str, str] = {}  # volume id -> VM name
        self._rate = 0.0
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._random = random.Random()
        self.set_rate(writes_per_second)

    @property
    def writes_per_second(self) -> float:
        return self._rate

    def set_rate(self, writes_per_second: float) -> None:
        """Writes per second to each disk of each running VM; 0 turns the guests off.

        Turning them off waits for a write in flight, so afterwards the files and the write log
        stay still (tests compare them).
        """
        with self._lock:
            self._rate = max(0.0, float(writes_per_second))
            if self._rate > 0 and self._thread is None and not self._stop:
                self._thread = threading.Thread(target=self._loop, name=f"agent-{self.host}-guest", daemon=True)
                self._thread.start()
            disks = list(self._disks.values())
        self._wake.set()
        if self._rate == 0:
            for disk in disks:
                with disk.lock:  # a write holds its disk's lock from pwrite to log entry
                    pass

    def attach(self, vm: str, volumes: list[tuple[str, Path, dict]]) -> None:
        """The VM runs here with these ``(volume id, file, pool)``; a disk whose file is unchanged
        is kept (a migration may be mirroring it), the others are replaced or retired."""
        with self._lock:
            listed = {volume_id for volume_id, _, _ in volumes}
            for volume_id in [v for v, name in self._vm_of.items() if name == vm and v not in listed]:
                self._disks.pop(volume_id).retired = True
                del self._vm_of[volume_id]
            for volume_id, path, pool in volumes:
                old = self._disks.get(volume_id)
                if old is not None and old.path == path:
                    old.pool = pool
                else:
                    if old is not None:
                        old.retired = True
                    self._disks[volume_id] = Disk(volume_id, path, pool)
                self._vm_of[volume_id] = vm

    def detach(self, vm: str) -> list[Disk]:
        """The VM no longer runs here: its disks are retired (no more writes). Returns them."""
        with self._lock:
            gone = [vid for vid, name in self._vm_of.items() if name == vm]
            disks = [self._disks.pop(vid) for vid in gone]
            for vid, disk in zip(gone, disks):
                del self._vm_of[vid]
                disk.retired = True  # read under the disk's lock by the writer; a bool store is atomic
            return disks

    def disk(self, volume_id: str) -> Disk | None:
        """The disk of a volume of a VM running here, or ``None``."""
        with self._lock:
            return self._disks.get(volume_id)

    def disks_of(self, vm: str) -> list[Disk]:
        with self._lock:
            return [self._disks[vid] for vid, name in self._vm_of.items() if name == vm]

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(5.0)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._stop:
                    return
                rate, disks = self._rate, list(self._disks.values())
            if rate <= 0:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            for disk in disks:
                try:
                    self.write_once(disk, background=True)
                except Exception:  # a guest write failing must never stop the guest
                    log.exception("guest write to volume %s failed", disk.volume_id)
            self._wake.wait(1.0 / rate)
            self._wake.clear()

    def write_once(self, disk: Disk, *, offset: int | None = None, background: bool = False) -> dict | None:
        """One guest write to a block of the disk (random unless ``offset``, rounded down to a
        block); returns its log entry, ``None`` when skipped. Background writes stop with the rate."""
        with disk.lock:
            if disk.retired or self._is_offline(disk.pool) or (background and self._rate <= 0):
                return None
            try:
                size = disk.path.stat().st_size
            except OSError:
                return None
            if size < self.block_size:
                return None
            blocks = size // self.block_size
            block = self._random.randrange(blocks) if offset is None else min(offset // self.block_size, blocks - 1)
            offset = block * self.block_size
            seq = self.log.next_seq()
            data = guest_data(disk.volume_id, seq, self.block_size)
            try:
                fd = os.open(disk.path, os.O_WRONLY)
            except OSError:
                return None
            try:
                os.pwrite(fd, data, offset)
            finally:
                os.close(fd)
            disk.mark(offset, len(data))
            entry = {"seq": seq, "volume": disk.volume_id, "vm": self._vm_of.get(disk.volume_id),
                     "pool": disk.pool["uuid"], "offset": offset, "length": len(data), "at": utc_now_iso()}
            self.log.append(entry)
            return entry
