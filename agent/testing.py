"""Helpers for driving a host agent in tests: pool objects, request bodies, polling, and one
small client that speaks the wire protocol over Flask's test client or over real HTTP.

Nothing here is used by the agent itself. Tests of other packages must not import it (they
speak the documented protocol); it exists so the agent's own tests read as sentences.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

TERMINAL_STATES = ("succeeded", "failed", "aborted")


def make_pool(name: str | None = None, pool_type: str = "SMB") -> dict:
    """A StorageFilerTO-like pool object with a random uuid and its own directory."""
    name = name or f"pool-{uuid.uuid4().hex[:8]}"
    return {"uuid": str(uuid.uuid4()), "path": f"/shared/{name}", "type": pool_type,
            "host": "fileserver.local", "port": 445}


def migrate_body(volume_id: str, volume_path: str, src: dict, dst: dict, *,
                 command_id: str | None = None, vm: str | None = "i-2-10-VM", wait: int = 3600) -> dict:
    """The body of a MigrateVolumeCommand."""
    return {"id": command_id or str(uuid.uuid4()), "type": "MigrateVolumeCommand",
            "volumeId": volume_id, "volumePath": volume_path, "srcPool": src, "pool": dst,
            "attachedVmName": vm, "wait": wait}


def mws_body(vm: str, vm_uuid: str, target: str, target_url: str, moves: list[tuple[dict, dict]], *,
             command_id: str | None = None, wait: int = 3600) -> dict:
    """The body of a MigrateWithStorageCommand; ``moves`` is ``[(volume {id, path, pool}, destination pool)]``."""
    return {"id": command_id or str(uuid.uuid4()), "type": "MigrateWithStorageCommand",
            "vm": {"name": vm, "uuid": vm_uuid}, "tgtHost": target, "tgtAgentUrl": target_url,
            "volumeToPool": [{"volume": volume, "pool": pool} for volume, pool in moves], "wait": wait}


def replay_writes(original: bytes, writes: list[dict], volume_id: str) -> bytes:
    """``original`` with the guest writes of a write log applied in the order given."""
    from agent.backends.guest import guest_data

    data = bytearray(original)
    for write in writes:
        offset, length = write["offset"], write["length"]
        data[offset:offset + length] = guest_data(volume_id, write["seq"], length)
    return bytes(data)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.01,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class HostClient:
    """The wire protocol of one host, over a Flask test client or ``requests``.

    Each call returns ``(status, json)``.
    """

    def __init__(self, base: str, flask_client=None, session=None):
        self.base = base.rstrip("/")
        self._flask = flask_client
        self._session = session

    @classmethod
    def for_app(cls, app, host_name: str) -> "HostClient":
        return cls(f"/hosts/{host_name}", flask_client=app.test_client())

    @classmethod
    def for_url(cls, base_url: str) -> "HostClient":
        import requests  # only for real-HTTP tests

        return cls(base_url, session=requests.Session())

    def request(self, method: str, path: str = "", json: Any = None, data: str | None = None):
        url = self.base + path
        if self._flask is not None:
            resp = self._flask.open(url, method=method, json=json, data=data)
            return resp.status_code, resp.get_json(silent=True)
        resp = self._session.request(method, url, json=json, data=data, timeout=30)
        return resp.status_code, resp.json()

    def status(self):
        return self.request("GET")

    def create_volume(self, volume_id: str, path: str, pool: dict, size: int, vm: str | None = None):
        return self.request("POST", "/volumes", json={"id": volume_id, "path": path, "pool": pool,
                                                      "size": size, "vm": vm})

    def locate(self, volume_id: str):
        return self.request("GET", f"/volumes/{volume_id}")

    def submit(self, body: Any = None, data: str | None = None):
        return self.request("POST", "/commands", json=body, data=data)

    def command(self, command_id: str):
        return self.request("GET", f"/commands/{command_id}")

    def abort(self, command_id: str):
        return self.request("POST", f"/commands/{command_id}/abort")

    def add_fault(self, **fault):
        return self.request("POST", "/faults", json=fault)

    def register_vm(self, name: str, vm_uuid: str, volumes: list[dict]):
        return self.request("POST", "/vms", json={"name": name, "uuid": vm_uuid, "volumes": volumes})

    def vm(self, name: str):
        return self.request("GET", f"/vms/{name}")

    def vms(self):
        return self.request("GET", "/vms")

    def writes(self, volume_id: str, since: int = 0):
        return self.request("GET", f"/volumes/{volume_id}/writes?since={since}")

    def guest(self, writes_per_second: float):
        return self.request("POST", "/guest", json={"writesPerSecond": writes_per_second})

    def pool_offline(self, **ref):
        return self.request("POST", "/pools/offline", json=ref)

    def pool_online(self, **ref):
        return self.request("POST", "/pools/online", json=ref)

    def wait_for_state(self, command_id: str, *states: str, timeout: float = 30.0) -> dict:
        """Poll the command until its state is one of ``states`` (default: any terminal state)."""
        wanted = states or TERMINAL_STATES

        def look():
            status, record = self.command(command_id)
            return record if status == 200 and record["state"] in wanted else None

        return wait_until(look, timeout, what=f"command {command_id} to be {'/'.join(wanted)}")
