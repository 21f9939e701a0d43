"""A host's storage side: volume files, pools online/offline, and where data really is.

``StorageMixin`` is part of ``HostAgent`` (it uses its ``backend``, ``registry``, ``guest`` and
``write_log``). It creates volume files (``POST {base}/volumes``), answers where a volume's data
really is, read from the disk (``GET {base}/volumes/{id}``, with sha256 per location on request),
shows a volume's guest write log checked against the file the volume lives in now
(``GET {base}/volumes/{id}/writes``), and takes pools offline and back online - the simulated
stand-in for an SMB share going away, visible to every agent process sharing the data root.
"""
from __future__ import annotations

from agent.backends.guest import guest_data
from agent.backends.simulated import PoolOffline, VolumeSizeMismatch
from agent.errors import AgentError, Conflict, NotFound
from agent.validation import parse_pool_ref, parse_volume_create, pool_relative_parts

MAX_MISMATCHES_SHOWN = 20


class StorageMixin:
    """Volume files, pools and the truth about them (see the module docstring)."""

    def create_volume(self, body) -> tuple[dict, bool]:
        """Create a volume file of exactly ``size`` random bytes unless it exists already."""
        req = parse_volume_create(body)
        pool = req["pool"]
        self.registry.remember_pool(pool)
        try:
            created = self.backend.create_volume(pool, req["path"], req["size"])
        except (VolumeSizeMismatch, PoolOffline) as exc:
            raise Conflict(str(exc)) from None
        except OSError as exc:
            raise AgentError(f"creating volume file {req['path']} in pool {pool['uuid']} failed: {exc}") from None
        self.registry.remember_volume(req["id"], path=req["path"], pool=pool["uuid"], size=req["size"], vm=req["vm"])
        answer = {"id": req["id"], "path": req["path"], "pool": pool["uuid"], "size": req["size"], "created": created}
        return answer, created

    def _volume_entry(self, volume_id: str) -> dict:
        entry = self.registry.volume(volume_id)
        if entry is None:
            raise NotFound(f"unknown volume {volume_id!r} on host {self.name!r}")
        return entry

    def locate_volume(self, volume_id: str, checksum: bool = False) -> dict:
        """Where the volume's data really is: every known pool holding its complete file."""
        entry = self._volume_entry(volume_id)
        locations = []
        for pool in self.registry.pools():
            size = self.backend.complete_size(pool["path"], entry["path"])
            if size is None:
                continue
            location = {"pool": pool["uuid"], "poolPath": pool["path"], "size": size,
                        "online": not self.backend.is_offline(pool)}
            if checksum:
                location["sha256"] = self.backend.checksum(pool["path"], entry["path"])
            locations.append(location)
        return {"id": volume_id, "path": entry["path"], "vm": entry.get("vm"), "locations": locations}

    def volume_writes(self, volume_id: str, since: int = 0) -> dict:
        """This host's guest writes to a volume, and whether the volume's file holds the latest ones."""
        writes = self.write_log.entries(volume_id)
        entry = self.registry.volume(volume_id)
        if entry is None and not writes:
            raise NotFound(f"unknown volume {volume_id!r} on host {self.name!r}")
        disk = self.guest.disk(volume_id)
        if disk is not None:
            path, pool_uuid = disk.path, disk.pool["uuid"]
        else:
            pool = self.registry.pool(entry["pool"]) if entry and entry.get("pool") else None
            path = self.backend.pool_dir(pool["path"]) / entry["path"] if pool else None
            pool_uuid = pool["uuid"] if pool else None
        latest = {}
        for write in writes:  # block-aligned writes: the latest one per offset is what the file must hold
            latest[write["offset"]] = write
        mismatches = []
        try:
            with open(path, "rb") as fh:
                for offset, write in sorted(latest.items()):
                    fh.seek(offset)
                    if fh.read(write["length"]) != guest_data(volume_id, write["seq"], write["length"]):
                        mismatches.append({"seq": write["seq"], "offset": offset})
            readable = True
        except (OSError, TypeError):
            readable = False
        return {
            "volume": volume_id,
            "blockSize": self.guest.block_size,
            "lastSeq": max((w["seq"] for w in writes), default=0),
            "writes": [w for w in writes if w["seq"] > since],
            "check": {"pool": pool_uuid, "checked": len(latest), "ok": readable and not mismatches,
                      "readable": readable, "mismatches": mismatches[:MAX_MISMATCHES_SHOWN]},
        }

    def set_pool_online(self, body, online: bool) -> dict:
        """Take a pool (by ``uuid`` or ``path``) offline or bring it back online."""
        ref = parse_pool_ref(body)
        if ref["uuid"] is not None:
            pool = self.registry.pool(ref["uuid"])
            if pool is None:
                raise NotFound(f"unknown pool {ref['uuid']!r} on host {self.name!r}; name it by 'path'")
        else:
            wanted = pool_relative_parts(ref["path"])
            pool = next((p for p in self.registry.pools() if pool_relative_parts(p["path"]) == wanted),
                        {"uuid": None, "path": ref["path"]})
        self.backend.set_offline(pool["path"], not online)
        return {"uuid": pool["uuid"], "path": pool["path"], "online": online}

    def list_pools(self) -> list[dict]:
        """Every pool this host has heard of, with whether it is online now."""
        return [{**pool, "online": not self.backend.is_offline(pool)} for pool in self.registry.pools()]
