"""``motion demo``: the seed's scenario 1 through the API on a fresh embedded system.

Find a running VM on Hyper-V 2012 R2 with a volume on shared storage, ask which pools suit it,
live-migrate the volume to a suitable one, poll the job, and check that the volume is Ready on
the new pool with its bytes intact and nothing left behind. Then show that storage motion on a
Hyper-V 2012 host is refused. Exit 0 only if all of it behaved.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from .client import ApiError, Client
from .embedded import EmbeddedSystem


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Demo:
    def __init__(self, system: EmbeddedSystem):
        self.system = system
        self.api = Client(system.endpoint, system.key["apikey"], system.key["secretkey"])
        self.ok = True

    def say(self, text: str) -> None:
        print(text, flush=True)

    def check(self, condition: bool, text: str) -> None:
        self.say(f"  [{'ok' if condition else 'FAILED'}] {text}")
        self.ok = self.ok and bool(condition)

    def volume_file(self, volume: dict) -> Path:
        pool = self.api.call("listStoragePools", id=volume["storageid"])["storagepool"][0]
        return self.system.agent_root / pool["path"].lstrip("/") / volume["path"]

    def pick_volume(self) -> tuple[dict, dict]:
        hosts = {h["id"]: h for h in self.api.call("listHosts").get("host", [])}
        for vm in self.api.call("listVirtualMachines", state="Running").get("virtualmachine", []):
            if hosts[vm["hostid"]]["hypervisorversion"] != "6.3":
                continue
            for vol in self.api.call("listVolumes", virtualmachineid=vm["id"]).get("volume", []):
                if vol["storagetype"] == "shared":
                    return vm, vol
        raise SystemExit("demo inventory has no running VM with a shared volume on Hyper-V 2012 R2")

    def scenario_1(self) -> None:
        vm, vol = self.pick_volume()
        self.say(f"Scenario 1: live-migrate volume {vol['name']} of running VM {vm['name']} "
                 f"(host {vm['hostname']}), now on pool {vol['storage']}")
        before = self.volume_file(vol)
        digest = sha256(before)
        self.say(f"  volume file {before} ({vol['size']} bytes, sha256 {digest[:16]}...)")
        pools = self.api.call("findStoragePoolsForMigration", id=vol["id"]).get("storagepool", [])
        for p in pools:
            why = "" if p["suitableformigration"] else " - " + "; ".join(p.get("reasons", []))
            self.say(f"  candidate {p['name']} ({p['scope']}, tags [{p['tags']}]): "
                     f"{'suitable' if p['suitableformigration'] else 'not suitable'}{why}")
        suitable = [p for p in pools if p["suitableformigration"]]
        self.check(bool(suitable), "findStoragePoolsForMigration offers a suitable shared pool")
        if not suitable:
            return
        dest = suitable[0]
        job = self.api.call("migrateVolume", volumeid=vol["id"], storageid=dest["id"], livemigrate=True)
        self.say(f"  migrateVolume to {dest['name']}: job {job['jobid']}")
        result = self.api.wait_job(job["jobid"], on_progress=lambda j: self.say(
            f"    pending: phase {j.get('phase')}, {j.get('bytesdone', 0)}/{j.get('bytestotal', 0)} bytes"))
        self.check(result["jobstatus"] == 1, f"job succeeded (jobstatus {result['jobstatus']}: "
                   f"{result.get('jobresult', {}).get('errortext', 'ok')})")
        after = self.api.call("listVolumes", id=vol["id"])["volume"][0]
        self.check(after["storageid"] == dest["id"] and after["state"] == "Ready",
                   f"volume is Ready on pool {after['storage']}")
        moved = self.volume_file(after)
        self.check(moved.exists() and sha256(moved) == digest,
                   f"data intact at {moved} (same sha256)")
        self.check(not before.exists(), "nothing left on the source pool")

    def refused_on_2012(self) -> None:
        hosts = {h["id"]: h for h in self.api.call("listHosts").get("host", [])}
        for vm in self.api.call("listVirtualMachines", state="Running").get("virtualmachine", []):
            if hosts[vm["hostid"]]["hypervisorversion"] == "6.2":
                vol = self.api.call("listVolumes", virtualmachineid=vm["id"])["volume"][0]
                pools = self.api.call("listStoragePools", clusterid=hosts[vm["hostid"]]["clusterid"])
                dest = [p for p in pools.get("storagepool", []) if p["id"] != vol["storageid"]
                        and p["scope"] != "HOST"]
                self.say(f"Hyper-V 2012: try to migrate volume {vol['name']} of VM {vm['name']} "
                         f"on host {vm['hostname']} (6.2)")
                try:
                    self.api.call("migrateVolume", volumeid=vol["id"], livemigrate=True,
                                  storageid=dest[0]["id"] if dest else vol["storageid"])
                    self.check(False, "storage motion on Hyper-V 2012 was refused")
                except ApiError as exc:
                    self.check(exc.code == 431, f"refused with {exc.code}: {exc.text}")
                return
        self.say("(no Hyper-V 2012 VM in this inventory; skipping the refusal check)")


def run_demo(data_dir: str | None = None, bandwidth: float | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="motion-demo-") as tmp:
        system = EmbeddedSystem(data_dir or tmp, port=0, bandwidth_mib_s=bandwidth)
        with system:
            print(f"motion demo: embedded system at {system.endpoint} (data in {system.data_dir})",
                  flush=True)
            demo = Demo(system)
            demo.scenario_1()
            demo.refused_on_2012()
            print("demo " + ("succeeded" if demo.ok else "FAILED"), flush=True)
            return 0 if demo.ok else 1
