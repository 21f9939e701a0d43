"""The VMs running on one host and where their volumes are, persisted across restarts.

Stands in for what Hyper-V's ``Msvm_ComputerSystem`` and its storage allocation settings say:
which VMs run on this host and which VHD(X) files they use. A VM is registered by the
orchestrator (``POST {base}/vms``) or by another host's agent at the end of a
``MigrateWithStorageCommand``; a successful migration moves its volume entries to the new pool,
and a VM that migrated away is removed. Kept in ``<state dir>/vms.json``, written atomically.
``VmsMixin`` is the part of ``HostAgent`` that serves them and attaches their guests' disks.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from agent.errors import NotFound
from agent.persist import read_json, remove_temps, write_json_atomic
from agent.validation import parse_vm

log = logging.getLogger(__name__)


def vm_volume(volume_id: str, path: str, pool: dict) -> dict:
    """A VM's volume entry: its id, file name and the pool that holds the file."""
    return {"id": volume_id, "path": path, "pool": pool["uuid"], "poolPath": pool["path"]}


class VmRegistry:
    """Running VMs of one host: ``{"name", "uuid", "volumes": [{"id", "path", "pool", "poolPath"}]}``."""

    def __init__(self, state_dir: Path, host: str):
        self.host = host
        self._file = state_dir / "vms.json"
        self._lock = threading.Lock()
        remove_temps(self._file)
        self._vms: dict[str, dict] = read_json(self._file, {}).get("vms", {})

    def _save(self) -> None:
        write_json_atomic(self._file, {"vms": self._vms})

    def _view(self, vm: dict) -> dict:
        return {"name": vm["name"], "uuid": vm["uuid"], "host": self.host, "state": "Running",
                "volumes": [dict(v) for v in vm["volumes"]]}

    def register(self, name: str, vm_uuid: str, volumes: list[dict]) -> tuple[dict, bool]:
        """Record that the VM runs here with these volumes; ``False`` if it was known already.

        Registering a known VM again replaces its uuid and volume list with the ones given.
        """
        with self._lock:
            created = name not in self._vms
            entry = {"name": name, "uuid": vm_uuid, "volumes": [dict(v) for v in volumes]}
            if self._vms.get(name) != entry:
                self._vms[name] = entry
                self._save()
            return self._view(entry), created

    def get(self, name: str) -> dict | None:
        with self._lock:
            vm = self._vms.get(name)
            return self._view(vm) if vm is not None else None

    def all(self) -> list[dict]:
        """Every VM running here, sorted by name."""
        with self._lock:
            return [self._view(self._vms[name]) for name in sorted(self._vms)]

    def remove(self, name: str) -> bool:
        """The VM no longer runs here; ``False`` if it was not registered."""
        with self._lock:
            if self._vms.pop(name, None) is None:
                return False
            self._save()
            return True

    def move_volume(self, volume_id: str, pool: dict) -> str | None:
        """A volume of a VM here now lives in ``pool``; returns the VM's name (``None``: no VM)."""
        with self._lock:
            for vm in self._vms.values():
                for volume in vm["volumes"]:
                    if volume["id"] == volume_id:
                        volume.update(pool=pool["uuid"], poolPath=pool["path"])
                        self._save()
                        return vm["name"]
            return None


class VmsMixin:
    """VM endpoints of ``HostAgent`` (uses its ``vms``, ``registry``, ``backend`` and ``guest``)."""

    def register_vm(self, body) -> tuple[dict, bool]:
        """Record that a VM runs on this host with these volumes (``True``: it was new here)."""
        req = parse_vm(body)
        volumes = []
        for volume in req["volumes"]:
            pool = volume["pool"]
            self.registry.remember_pool(pool)
            self.registry.remember_volume(volume["id"], path=volume["path"], pool=pool["uuid"], vm=req["name"])
            volumes.append(vm_volume(volume["id"], volume["path"], pool))
        vm, created = self.vms.register(req["name"], req["uuid"], volumes)
        self._attach(vm)
        log.info("host %s: VM %s %s with volumes %s", self.name, vm["name"], "registered" if created else
                 "registered again", ",".join(f"{v['id']}@{v['pool']}" for v in vm["volumes"]))
        return vm, created

    def _attach(self, vm: dict) -> None:
        self.guest.attach(vm["name"], [
            (v["id"], self.backend.pool_dir(v["poolPath"]) / v["path"],
             self.registry.pool(v["pool"]) or {"uuid": v["pool"], "path": v["poolPath"]})
            for v in vm["volumes"]])

    def list_vms(self) -> list[dict]:
        return self.vms.all()

    def vm(self, name: str) -> dict:
        vm = self.vms.get(name)
        if vm is None:
            raise NotFound(f"VM {name!r} is not running on host {self.name!r}")
        return vm

    def remove_vm(self, name: str) -> dict:
        """Forget a VM (it stopped or runs elsewhere now); its guest stops writing."""
        vm = self.vm(name)
        self.vms.remove(name)
        self.guest.detach(name)
        return vm
