"""One host's registries of the pools and volumes it has heard of, persisted across restarts.

Pools (uuid -> StorageFilerTO) are remembered from every request that names one, so the agent
can later look for a volume's file in every pool directory it knows. Volumes (id -> file name,
last known pool, size, VM) are remembered from ``POST /volumes`` and from migrate commands. The
registry records what the agent was told; where the data really is comes from the disk
(``HostAgent.locate_volume``).
"""
from __future__ import annotations

import threading
from pathlib import Path

from agent.persist import read_json, remove_temps, write_json_atomic


class Registry:
    """Pools and volumes of one host, each map kept in its own JSON file under ``state_dir``."""

    def __init__(self, state_dir: Path):
        self._pools_file = state_dir / "pools.json"
        self._volumes_file = state_dir / "volumes.json"
        self._lock = threading.Lock()
        remove_temps(self._pools_file)
        remove_temps(self._volumes_file)
        self._pools: dict[str, dict] = read_json(self._pools_file, {}).get("pools", {})
        self._volumes: dict[str, dict] = read_json(self._volumes_file, {}).get("volumes", {})

    def remember_pool(self, pool: dict) -> None:
        """Record a pool object; rewritten only when something about it changed."""
        with self._lock:
            if self._pools.get(pool["uuid"]) == pool:
                return
            self._pools[pool["uuid"]] = dict(pool)
            write_json_atomic(self._pools_file, {"pools": self._pools})

    def pool(self, uuid: str) -> dict | None:
        """The pool object with this uuid, or ``None`` if never seen."""
        with self._lock:
            pool = self._pools.get(uuid)
            return dict(pool) if pool is not None else None

    def pools(self) -> list[dict]:
        """Every pool seen, sorted by uuid."""
        with self._lock:
            return [dict(self._pools[uuid]) for uuid in sorted(self._pools)]

    def remember_volume(self, volume_id: str, **fields) -> dict:
        """Create or update a volume entry; ``None`` values never overwrite known ones."""
        with self._lock:
            entry = dict(self._volumes.get(volume_id, {"id": volume_id}))
            entry.update({k: v for k, v in fields.items() if v is not None})
            if self._volumes.get(volume_id) != entry:
                self._volumes[volume_id] = entry
                write_json_atomic(self._volumes_file, {"volumes": self._volumes})
            return dict(entry)

    def volume(self, volume_id: str) -> dict | None:
        """The volume entry, or ``None`` if the agent never heard of it."""
        with self._lock:
            entry = self._volumes.get(volume_id)
            return dict(entry) if entry is not None else None
