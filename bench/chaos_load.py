"""The workload of a chaos run: its inventory, and the migrations it submits and follows.

``build_inventory`` makes a synthetic inventory (``orchestrator.inventory.generate``) with
volumes of 1-4 MiB and each host's agent URL pointing at the agent process that serves its
cluster. ``Load`` submits migrations through the real ``cs`` client - single volumes to another
suitable pool (``migrateVolume``) and VMs with their volumes to another host
(``migrateVirtualMachineWithVolume``) - never two at once on one volume or VM, at most
``in_flight`` pending at a time, and follows every job to its end with ``queryAsyncJobResult``.
Every loop is bounded in count and in time.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
from cs import CloudStackApiException

from orchestrator import inventory

SIZES = ("1MiB", "2MiB", "3MiB", "4MiB")


def build_inventory(rng: random.Random, clusters: int, hosts_per_cluster: int, vms_per_host: int,
                    agents: int, agent_ports: dict[str, int], seed: int) -> tuple[dict, dict[str, list[str]]]:
    """The inventory dict, and which hosts each agent serves (whole clusters, round robin)."""
    data = inventory.generate(clusters_per_pod=clusters, hosts_per_cluster=hosts_per_cluster,
                              shared_pools_per_cluster=3, zone_pools=1, vms_per_host=vms_per_host,
                              data_volumes_per_vm=1, volume_size="4MiB", seed=seed)
    names = list(agent_ports)
    agent_hosts: dict[str, list[str]] = {name: [] for name in names}
    index = 0
    for zone in data["zones"]:
        for pod in zone["pods"]:
            for cluster in pod["clusters"]:
                agent = names[index % agents]
                index += 1
                for host in cluster["hosts"]:
                    host["agent_url"] = f"http://127.0.0.1:{agent_ports[agent]}/hosts/{host['name']}"
                    agent_hosts[agent].append(host["name"])
    for vm in data["vms"]:
        for volume in vm["volumes"]:
            volume["size"] = rng.choice(SIZES)
    return data, {a: h for a, h in agent_hosts.items() if h}


@dataclass
class Job:
    jobid: str
    kind: str  # "volume" or "vm"
    label: str
    volumes: list[str]
    vm: str | None
    target: str  # pool id (volume) or host id (vm)
    submitted: float = field(default_factory=time.monotonic)
    status: int = 0
    phase: str = "queued"
    bytes_done: int = 0
    error: str = ""
    ended: float | None = None


class Load:
    """Submits ``total`` migrations, keeps at most ``in_flight`` pending, follows them to the end."""

    def __init__(self, api, rng: random.Random, total: int, in_flight: int, vm_share: float):
        self.api, self.rng, self.total = api, rng, total
        self.in_flight, self.vm_share = in_flight, vm_share
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.rejected: Counter = Counter()
        self.api_errors = 0
        vms = api.listVirtualMachines(fetch_list=True)
        self.vm_ids = sorted(v["id"] for v in vms)
        self.vm_names = {v["id"]: v["name"] for v in vms}
        self.volumes = {v["id"]: v for v in api.listVolumes(fetch_list=True)}
        self.vm_volumes: dict[str, list[str]] = {vm: [] for vm in self.vm_ids}
        for v in self.volumes.values():
            if v.get("virtualmachineid") in self.vm_volumes:
                self.vm_volumes[v["virtualmachineid"]].append(v["id"])
        self.movable_volumes = sorted(v["id"] for v in self.volumes.values() if v["storagetype"] == "shared")

    # -- what is going on ------------------------------------------------------------------
    def pending(self) -> list[Job]:
        with self.lock:
            return [j for j in self.jobs.values() if j.status == 0]

    def copying(self) -> list[Job]:
        return [j for j in self.pending() if j.phase == "dispatched" and j.bytes_done > 0]

    def submitted(self) -> int:
        return len(self.jobs)

    def _busy(self) -> tuple[set, set]:
        vols, vms = set(), set()
        for job in self.pending():
            vols.update(job.volumes)
            if job.vm:
                vms.add(job.vm)
        return vols, vms

    # -- submitting ------------------------------------------------------------------------
    def submit_one(self, tries: int = 8) -> bool:
        """Submit one migration of something idle; False if none could be submitted."""
        busy_vols, busy_vms = self._busy()
        for _ in range(tries):
            try:
                job = (self._vm_job if self.rng.random() < self.vm_share else self._volume_job)(busy_vols, busy_vms)
            except CloudStackApiException as exc:  # intake refused: count why, try something else
                self.rejected[str(exc.error.get("errortext", exc))[:120]] += 1
                continue
            except requests.RequestException:
                self.api_errors += 1
                time.sleep(0.5)
                continue
            if job is not None:
                with self.lock:
                    self.jobs[job.jobid] = job
                return True
        return False

    def _volume_job(self, busy_vols: set, busy_vms: set) -> Job | None:
        idle = [v for v in self.movable_volumes if v not in busy_vols
                and self.volumes[v].get("virtualmachineid") not in busy_vms]
        if not idle:
            return None
        for vol in self.rng.sample(idle, min(5, len(idle))):  # many tagged volumes fit no other pool
            suitable = [p for p in self.api.findStoragePoolsForMigration(id=vol).get("storagepool", [])
                        if p["suitableformigration"]]
            if suitable:
                break
        else:
            return None
        pool = self.rng.choice(suitable)
        jobid = self.api.migrateVolume(volumeid=vol, storageid=pool["id"], livemigrate=True)["jobid"]
        return Job(jobid, "volume", f"volume {self.volumes[vol]['name']} -> pool {pool['name']}", [vol],
                   None, pool["id"])

    def _vm_job(self, busy_vols: set, busy_vms: set) -> Job | None:
        idle = [vm for vm in self.vm_ids if vm not in busy_vms and not busy_vols.intersection(self.vm_volumes[vm])]
        if not idle:
            return None
        for vm in self.rng.sample(idle, min(5, len(idle))):
            suitable = [h for h in self.api.findHostsForMigration(virtualmachineid=vm).get("host", [])
                        if h["suitableformigration"] and h["requiresStorageMotion"]]
            if suitable:
                break
        else:
            return None
        host = self.rng.choice(suitable)
        jobid = self.api.migrateVirtualMachineWithVolume(virtualmachineid=vm, hostid=host["id"])["jobid"]
        return Job(jobid, "vm", f"VM {self.vm_names[vm]} -> host {host['name']}", list(self.vm_volumes[vm]),
                   vm, host["id"])

    # -- following -------------------------------------------------------------------------
    def poll(self) -> None:
        """One look at every pending job."""
        for job in self.pending():
            try:
                answer = self.api.queryAsyncJobResult(jobid=job.jobid)
            except (CloudStackApiException, requests.RequestException):
                self.api_errors += 1
                continue
            with self.lock:
                job.status = answer["jobstatus"]
                job.phase = answer.get("phase", "done")
                job.bytes_done = answer.get("bytesdone", job.bytes_done)
                if job.status != 0:
                    job.ended = time.monotonic()
                    job.error = (answer.get("jobresult") or {}).get("errortext", "") if job.status == 2 else ""

    def submit_all(self, timeout: float) -> None:
        """Submit ``total`` migrations (bounded: at most 4 x total tries, ``timeout`` seconds),
        looking at the pending jobs once a second (a look costs one API call per job)."""
        end, tries = time.monotonic() + timeout, 0
        while self.submitted() < self.total and tries < 4 * self.total and time.monotonic() < end:
            while self.submitted() < self.total and len(self.pending()) < self.in_flight and tries < 4 * self.total:
                tries += 1
                if not self.submit_one():
                    break
            time.sleep(1.0)
            self.poll()

    def wait_all(self, timeout: float) -> bool:
        """Follow the pending jobs until none is left or ``timeout`` passes; True if none is left."""
        end = time.monotonic() + timeout
        while self.pending() and time.monotonic() < end:
            time.sleep(1.0)
            self.poll()
        return not self.pending()
