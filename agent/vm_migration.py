"""Running and recovering ``MigrateWithStorageCommand``: a VM to another host, its volumes to new pools.

Real contract: CloudStack's Hyper-V agent handles ``MigrateWithStorageCommand`` (VM, destination
host, volume->pool map) on the source host with one WMI ``MigrateVirtualSystemToHost`` of
``MigrationType`` VirtualSystemAndStorage: Hyper-V mirrors every disk to its new location while
the VM runs, then switches the VM over to the destination host in one short pause, and only then
deletes the source files. If anything fails before the switch-over, the destination copies are
deleted and the VM keeps running on the source: no volume is ever left split between two places.

Here: every volume whose destination pool differs from its current one is mirrored (bulk copy,
one volume after the other, then re-copy passes for all); a volume already in its destination
pool stays. The switch-over pauses the guest I/O of every disk of the VM, copies the last dirty
chunks, renames every copy into place, durably marks the command ``switched``, and registers the
VM on the destination agent (``POST {tgtAgentUrl}/vms``, real HTTP). That answer is the point of
no return: the VM is removed from this host and the sources are deleted. A restarted agent rolls
a ``switched`` command whose copies are all complete forward (and registers the VM on the
destination again, in the background, until that succeeds); any other unfinished command back.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request

from agent import commands as cs
from agent.backends.simulated import MigrationFailed, MigrationInterrupted
from agent.command_bodies import moved_volumes
from agent.jobs import RESTARTED_ERROR, Control, apply_fault
from agent.validation import same_pool

log = logging.getLogger(__name__)

REGISTER_TIMEOUT = 10.0  # seconds for the destination agent to answer POST /vms
REREGISTER_FOR = 120.0  # seconds a restarted agent keeps trying to register a switched VM


def _volume_table(host, request: dict) -> list[dict]:
    table = []
    for entry in request["volumeToPool"]:
        volume, dst = entry["volume"], entry["pool"]
        stays = same_pool(volume["pool"], dst)
        size = 0 if stays else host.backend.complete_size(volume["pool"]["path"], volume["path"]) or 0
        table.append({"id": volume["id"], "bytesDone": 0, "bytesTotal": size,
                      "state": "stays" if stays else "pending"})
    return table


def _result(request: dict) -> dict:
    return {"vm": request["vm"]["name"], "host": request["tgtHost"],
            "volumeTos": [{"id": e["volume"]["id"], "path": e["volume"]["path"], "pool": e["pool"]["uuid"]}
                          for e in request["volumeToPool"]]}


def registration(host, request: dict) -> dict:
    """The body of ``POST {tgtAgentUrl}/vms``: the VM with every volume at its final location."""
    volumes = [{"id": e["volume"]["id"], "path": e["volume"]["path"], "pool": e["pool"]}
               for e in request["volumeToPool"]]
    named = {v["id"] for v in volumes}
    known = host.vms.get(request["vm"]["name"]) or {"volumes": []}
    for other in known["volumes"]:  # volumes of the VM the command does not name stay where they are
        if other["id"] not in named:
            pool = host.registry.pool(other["pool"]) or {"uuid": other["pool"], "path": other["poolPath"]}
            volumes.append({"id": other["id"], "path": other["path"], "pool": pool})
    return {"name": request["vm"]["name"], "uuid": request["vm"]["uuid"], "volumes": volumes}


def register_on_target(url: str, body: dict, target: str) -> None:
    """``POST {url}/vms``; raises ``MigrationFailed`` unless the destination agent accepts it."""
    data = json.dumps(body).encode()
    req = urllib.request.Request(f"{url}/vms", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=REGISTER_TIMEOUT) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise MigrationFailed(f"registering the VM on host {target} at {url} failed: "
                              f"HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise MigrationFailed(f"registering the VM on host {target} at {url} failed: {exc}") from None


def run_migrate_with_storage(host, command_id: str, control: Control) -> None:
    """Execute a running ``MigrateWithStorageCommand`` on ``host`` (the source) to its end."""
    request = host.commands.request(command_id)
    vm, target, entries = request["vm"]["name"], request["tgtHost"], request["volumeToPool"]
    fault = host.faults.take(request["type"], [e["volume"]["id"] for e in entries])
    at = fault["at"] if fault else None
    table, mirrors, current = _volume_table(host, request), {}, None

    def progress() -> None:
        for i, m in mirrors.items():
            table[i]["bytesDone"] = m.done
        host.commands.progress(command_id, sum(v["bytesDone"] for v in table), sum(v["bytesTotal"] for v in table),
                               recopied=sum(m.recopied for m in mirrors.values()), volumes=table)

    try:
        try:
            bandwidth = None
            if fault and at is None:
                if fault["type"] == "fail":
                    raise MigrationFailed(fault["message"])
                bandwidth = apply_fault(fault, control)
            progress()
            for i, entry in enumerate(entries):
                if table[i]["state"] == "stays":
                    continue
                current, volume, dst = i, entry["volume"], entry["pool"]
                speed = bandwidth
                if fault and at == i:
                    if fault["type"] == "fail":
                        raise MigrationFailed(fault["message"])
                    speed = apply_fault(fault, control) or bandwidth
                mirror = mirrors[i] = host.backend.mirror(host.guest.disk(volume["id"]), volume["pool"], dst,
                                                          volume["path"], control, bandwidth_mib_s=speed)
                table[i]["state"] = "copying"
                mirror.open()
                table[i]["bytesTotal"] = mirror.total
                progress()
                mirror.bulk(progress)
                table[i]["state"] = "copied"
                progress()
            for i, mirror in mirrors.items():
                current = i
                mirror.converge(progress)
            current = None
            _switch_over(host, command_id, request, mirrors)
        except BaseException:
            for i, mirror in mirrors.items():
                mirror.discard()
                table[i]["state"] = "rolledBack"
            raise
    except MigrationInterrupted:
        if control.abort_requested:
            host.finish(command_id, cs.ABORTED, volumes=table)
        return  # agent stopping: left running on disk for the next start to finish
    except MigrationFailed as exc:
        if current is not None:
            table[current]["state"] = "failed"
            volume = entries[current]["volume"]
            where = f"at volume {volume['id']} ({volume['path']})"
        else:
            where = "at the switch-over" if mirrors else "before any volume was copied"
        host.finish(command_id, cs.FAILED, volumes=table, error=(
            f"migration of VM {vm} to host {target} failed {where}: {exc}; no volume is left split between "
            f"two places: every destination copy was removed, the sources and the VM stay on host {host.name}"))
        return
    if fault and fault["type"] == "crash":
        host.crash(command_id)
    for i, mirror in mirrors.items():
        table[i].update(state="moved", bytesDone=mirror.total)
    _moved(host, request)
    host.finish(command_id, cs.SUCCEEDED, volumes=table, bytesDone=sum(v["bytesTotal"] for v in table),
                recopiedBytes=sum(m.recopied for m in mirrors.values()), result=_result(request))


def _switch_over(host, command_id: str, request: dict, mirrors: dict) -> None:
    vm, target = request["vm"]["name"], request["tgtHost"]
    disks = {id(m.disk): m.disk for m in mirrors.values()}
    disks.update({id(d): d for d in host.guest.disks_of(vm)})
    body = registration(host, request)
    with contextlib.ExitStack() as paused:
        for disk in sorted(disks.values(), key=lambda d: d.volume_id):
            paused.enter_context(disk.lock)  # one order for every taker: no lock-order deadlock
        for mirror in mirrors.values():
            mirror.switch_over()
        host.commands.mark(command_id, switched=True, registration=body)
        try:
            register_on_target(request["tgtAgentUrl"], body, target)
        except MigrationFailed:
            host.commands.mark(command_id, switched=False)
            raise
        # Point of no return: the VM runs on the destination now.
        host.vms.remove(vm)
        host.guest.detach(vm)
        for i, mirror in mirrors.items():
            try:
                mirror.remove_source(request["volumeToPool"][i]["pool"])
            except MigrationFailed as exc:  # the copy is complete and in use; a stale source is garbage
                log.warning("host %s command %s: %s", host.name, command_id, exc)


def _moved(host, request: dict) -> None:
    for entry in request["volumeToPool"]:
        host.registry.remember_pool(entry["pool"])
        host.registry.remember_volume(entry["volume"]["id"], path=entry["volume"]["path"],
                                      pool=entry["pool"]["uuid"], vm=request["vm"]["name"])


def discard_partials(host, request: dict) -> None:
    """Remove every partial copy of a ``MigrateWithStorageCommand`` (after an unexpected error)."""
    for entry in moved_volumes(request):
        host.backend.discard_partial(entry["pool"]["path"], entry["volume"]["path"])


def recover_migrate_with_storage(host, command_id: str, record: dict) -> None:
    """Finish a ``MigrateWithStorageCommand`` that a previous agent process left unfinished."""
    request = host.commands.request(command_id)
    internal = host.commands.internal(command_id)
    moved = moved_volumes(request)
    discard_partials(host, request)
    files = [(host.backend.volume_file(e["volume"]["pool"], e["volume"]["path"]),
              host.backend.volume_file(e["pool"], e["volume"]["path"])) for e in moved]
    table = record.get("volumes") or _volume_table(host, request)
    if record["state"] == cs.RUNNING and internal.get("switched") and all(final.is_file() for _, final in files):
        for src, final in files:  # roll forward: every copy is complete and the VM was being handed over
            src.unlink(missing_ok=True)
        host.vms.remove(request["vm"]["name"])
        _moved(host, request)
        for v in table:
            if v["state"] != "stays":
                v.update(state="moved", bytesDone=v["bytesTotal"])
        host.commands.transition(command_id, {cs.RUNNING}, state=cs.SUCCEEDED, volumes=table,
                                 bytesDone=sum(v["bytesTotal"] for v in table), result=_result(request))
        _register_in_background(host, request, internal.get("registration") or registration(host, request))
        return
    for src, final in files if record["state"] == cs.RUNNING else ():
        if final.is_file() and src.is_file():  # roll back: the sources are complete; copies renamed
            final.unlink()                      # before the crash go
    for v in table:
        if v["state"] not in ("stays", "pending"):
            v["state"] = "rolledBack"
    host.commands.transition(command_id, {cs.ACCEPTED, cs.RUNNING}, state=cs.FAILED, volumes=table,
                             error=RESTARTED_ERROR)


def _register_in_background(host, request: dict, body: dict) -> None:
    """Register a VM whose switch-over a crash cut short on its destination, retrying for a while."""
    def attempt() -> None:
        deadline, last = time.monotonic() + REREGISTER_FOR, None
        while time.monotonic() < deadline:
            try:
                register_on_target(request["tgtAgentUrl"], body, request["tgtHost"])
                return
            except MigrationFailed as exc:
                last = exc
                time.sleep(1.0)
        log.error("host %s: could not register VM %s on host %s after a restart: %s",
                  host.name, body["name"], request["tgtHost"], last)

    threading.Thread(target=attempt, name=f"agent-{host.name}-reregister", daemon=True).start()
