"""Unit tests of the inventory format: parse, validate, sizes, YAML text and generate (no database)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from orchestrator import inventory
from orchestrator.errors import InventoryError

DEMO = Path(__file__).resolve().parents[2] / "motion" / "demo-inventory.yaml"
CLUSTER_A = "zones[0] (zone1).pods[0] (pod1).clusters[0] (cluster-a)"
HOST_A1 = f"{CLUSTER_A}.hosts[0] (hv-a1)"

BASE = """
zones:
  - name: zone1
    pods:
      - name: pod1
        clusters:
          - name: cluster-a
            hypervisor: Hyperv
            hosts:
              - name: hv-a1
                hypervisor_version: "6.3"
                cpu: {number: 16, speed: 2400}
                memory: 64GiB
                host_tags: [fast]
                ip_address: 10.0.0.11
                local_pools:
                  - {name: hv-a1-local, capacity: 200GiB}
              - name: hv-a2
                hypervisor_version: "6.3"
                cpu: {number: 16, speed: 2400}
                memory: 64GiB
                local_pools:
                  - {name: hv-a2-local, capacity: 200GiB}
            pools:
              - {name: a-gold, tags: [gold], capacity: 1TiB}
              - {name: a-bronze, tags: [bronze], capacity: 1TiB}
          - name: cluster-b
            hosts:
              - name: hv-b1
                hypervisor_version: "6.3"
                cpu: {number: 8, speed: 2000}
                memory: 32GiB
            pools:
              - {name: b-gold, tags: [gold], capacity: 1TiB}
    pools:
      - {name: zone-bulk, tags: [bulk], capacity: 4TiB}
  - name: zone2
    pods:
      - name: pod1
        clusters:
          - name: cluster-a
            hosts:
              - name: hv-z1
                hypervisor_version: "6.2"
                cpu: {number: 8, speed: 2000}
                memory: 32GiB
    pools:
      - {name: z2-bulk, capacity: 4TiB}
disk_offerings:
  - {name: shared-gold, storage: shared, tags: [gold], size: 8MiB}
  - {name: shared-any, storage: shared}
  - {name: local-any, storage: local}
service_offerings:
  - {name: small, cpu: {number: 1, speed: 500}, memory: 512MiB, storage: shared}
  - {name: small-fast, cpu: {number: 1, speed: 500}, memory: 512MiB, host_tags: [fast]}
  - {name: small-local, cpu: {number: 1, speed: 500}, memory: 512MiB, storage: local}
accounts:
  - {name: alice, role: user}
vms:
  - name: web-1
    host: hv-a1
    service_offering: small-fast
    state: Running
    account: alice
    volumes:
      - {name: web-1-root, type: ROOT, pool: a-gold, size: 8MiB, disk_offering: shared-gold}
      - {name: web-1-data, type: DATADISK, pool: hv-a1-local, size: 1MiB, disk_offering: local-any}
  - name: web-2
    host: hv-a2
    service_offering: small-local
    state: Stopped
    volumes:
      - {name: web-2-root, type: ROOT, pool: hv-a2-local, size: 2MiB, disk_offering: local-any}
  - name: web-3
    host: hv-b1
    service_offering: small
    volumes:
      - {name: web-3-root, type: ROOT, pool: b-gold, disk_offering: shared-gold}
      - {name: web-3-bulk, type: DATA, pool: zone-bulk, size: 1048576, disk_offering: shared-any}
"""

DELETE = object()


def base() -> dict:
    return inventory.parse(BASE)


def changed(data: dict, *edits) -> dict:
    """A copy of ``data`` with each (dotted path, value) edit applied; DELETE removes the key."""
    data = copy.deepcopy(data)
    for path, value in edits:
        *parents, last = path.split(".")
        target = data
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key = int(last) if isinstance(target, list) else last
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
    return data


def rejection(data: dict) -> str:
    with pytest.raises(InventoryError) as caught:
        inventory.validate(data)
    return str(caught.value)


# --------------------------------------------------------------------------- parse and YAML

def test_the_base_inventory_of_these_tests_is_valid():
    inventory.validate(base())


def test_the_demo_inventory_validates():
    inventory.validate(inventory.parse(DEMO.read_text()))


def test_empty_text_is_an_empty_inventory_which_is_valid():
    assert inventory.parse("") == {}
    inventory.validate({})


def test_text_that_is_not_yaml_is_rejected_as_an_inventory_error():
    with pytest.raises(InventoryError, match="not valid YAML"):
        inventory.parse("zones: [unclosed")


def test_a_top_level_that_is_not_a_mapping_is_rejected():
    with pytest.raises(InventoryError, match="top level must be a mapping"):
        inventory.parse("- just\n- a list\n")


def test_a_key_given_twice_in_one_mapping_is_rejected_with_its_line():
    with pytest.raises(InventoryError, match="line 3: duplicate key 'memory'"):
        inventory.parse("hosts:\n  - memory: 1GiB\n    memory: 2GiB\n")


def test_to_yaml_text_parses_back_to_the_same_inventory():
    data = base()
    assert inventory.parse(inventory.to_yaml(data)) == data


def test_to_yaml_writes_no_anchors_for_shared_objects():
    cpu = {"number": 1, "speed": 500}
    text = inventory.to_yaml({"service_offerings": [
        {"name": "a", "cpu": cpu, "memory": "1GiB"}, {"name": "b", "cpu": cpu, "memory": "1GiB"}]})
    assert "&" not in text and "*" not in text


# --------------------------------------------------------------------------- sizes

@pytest.mark.parametrize("text, size", [
    (512, 512), ("512", 512), ("512B", 512), ("4KiB", 4096), ("8MiB", 8 << 20),
    ("64 GiB", 64 << 30), ("1TiB", 1 << 40)])
def test_sizes_are_bytes_or_strings_with_binary_units(text, size):
    assert inventory.parse_size(text) == size


@pytest.mark.parametrize("text", ["8MB", "1.5GiB", "eight", "", True, None, [1]])
def test_anything_else_is_not_a_size(text):
    with pytest.raises(ValueError):
        inventory.parse_size(text)


def test_sizes_are_written_in_the_largest_exact_unit_or_as_bytes():
    assert [inventory.format_size(n) for n in (8 << 20, 3 << 40, 2048, 1536, 0)] == \
        ["8MiB", "3TiB", "2KiB", 1536, 0]


# --------------------------------------------------------------------------- validation rules

REJECTIONS = [
    # required fields and types
    ("a host without cpu", [(f"zones.0.pods.0.clusters.0.hosts.0.cpu", DELETE)],
     f"{HOST_A1}: missing required field 'cpu'"),
    ("a cpu count given as text", [("zones.0.pods.0.clusters.0.hosts.0.cpu.number", "16")],
     f"{HOST_A1}.cpu.number: must be a positive integer, not '16'"),
    ("a cpu speed of zero", [("service_offerings.0.cpu.speed", 0)],
     "service_offerings[0] (small).cpu.speed: must be a positive integer, not 0"),
    ("a name that is not a string", [("vms.0.name", 42)], "vms[0].name: must be a non-empty string"),
    ("an entry that is not a mapping", [("zones.0.pods.0.clusters.0.hosts.0", "hv-a1")],
     f"{CLUSTER_A}.hosts[0]: must be a mapping, not str"),
    ("a list that is not a list", [("vms", {"name": "web-1"})], "vms: must be a list, not dict"),
    ("a VM without volumes", [("vms.1.volumes", DELETE)],
     "vms[1] (web-2): missing required field 'volumes'"),
    # sizes
    ("a memory size in decimal units", [("zones.0.pods.0.clusters.0.hosts.0.memory", "64GB")],
     f"{HOST_A1}.memory: '64GB' is not a size"),
    ("a pool of no capacity", [("zones.0.pods.0.clusters.0.pools.0.capacity", 0)],
     f"{CLUSTER_A}.pools[0] (a-gold).capacity: must be more than 0 bytes"),
    ("a negative disk offering size", [("disk_offerings.1.size", -1)],
     "disk_offerings[1] (shared-any).size: must be at least 0 bytes"),
    ("a volume size that differs from its fixed-size offering", [("vms.0.volumes.0.size", "4MiB")],
     "vms[0] (web-1).volumes[0].size: 4MiB differs from the size of disk offering 'shared-gold' (8MiB)"),
    ("a volume without size on a custom-size offering", [("vms.0.volumes.1.size", DELETE)],
     "vms[0] (web-1).volumes[1]: missing required field 'size' (disk offering 'local-any'"),
    # unknown keys
    ("an unknown key in a VM", [("vms.0.colour", "blue")],
     "vms[0] (web-1): unknown key 'colour' (allowed: name, host, service_offering"),
    ("an unknown top-level key", [("zone", [])], "inventory: unknown key 'zone'"),
    ("unknown keys in a pool", [("zones.0.pools.0.iops", 1), ("zones.0.pools.0.owner", "x")],
     "zones[0] (zone1).pools[0] (zone-bulk): unknown keys 'iops', 'owner'"),
    ("an unknown key in cpu", [("zones.0.pods.0.clusters.0.hosts.0.cpu.cores", 2)],
     f"{HOST_A1}.cpu: unknown key 'cores'"),
    # duplicate names
    ("two zones with one name", [("zones.1.name", "zone1")],
     "zones[1] (zone1).name: duplicate zone name 'zone1' (first at zones[0] (zone1))"),
    ("two pods with one name in a zone", [("zones.0.pods", [{"name": "p"}, {"name": "p"}])],
     "zones[0] (zone1).pods[1] (p).name: duplicate pod name 'p' in this zone"),
    ("two clusters with one name in a pod", [("zones.0.pods.0.clusters.1.name", "cluster-a")],
     "zones[0] (zone1).pods[0] (pod1).clusters[1] (cluster-a).name: duplicate cluster name "
     "'cluster-a' in this pod"),
    ("two hosts with one name in different clusters",
     [("zones.0.pods.0.clusters.1.hosts.0.name", "hv-a1")],
     "zones[0] (zone1).pods[0] (pod1).clusters[1] (cluster-b).hosts[0] (hv-a1).name: duplicate host "
     f"name 'hv-a1' (first at {HOST_A1})"),
    ("a local pool named like a cluster pool",
     [("zones.0.pods.0.clusters.0.hosts.1.local_pools.0.name", "a-gold")],
     f"{CLUSTER_A}.pools[0] (a-gold).name: duplicate pool name 'a-gold'"),
    ("two VMs with one name", [("vms.2.name", "web-1")],
     "vms[2] (web-1).name: duplicate VM name 'web-1' (first at vms[0] (web-1))"),
    ("two disk offerings with one name", [("disk_offerings.2.name", "shared-any")],
     "disk_offerings[2] (shared-any).name: duplicate disk offering name 'shared-any'"),
    ("two service offerings with one name", [("service_offerings.2.name", "small")],
     "service_offerings[2] (small).name: duplicate service offering name 'small'"),
    ("two accounts with one name", [("accounts", [{"name": "bob"}, {"name": "bob"}])],
     "accounts[1] (bob).name: duplicate account name 'bob'"),
    ("two volumes with one name in a VM", [("vms.0.volumes.1.name", "web-1-root")],
     "vms[0] (web-1).volumes[1].name: duplicate volume name 'web-1-root' in this VM "
     "(first at vms[0] (web-1).volumes[0])"),
    ("two pools with one path", [("zones.0.pools.0.path", "/shared/a-gold")],
     "zones[0] (zone1).pools[0] (zone-bulk).path: '/shared/a-gold' is already the path of "
     f"{CLUSTER_A}.pools[0] (a-gold)"),
    # hypervisor and versions
    ("a KVM cluster", [("zones.0.pods.0.clusters.0.hypervisor", "KVM")],
     f"{CLUSTER_A}.hypervisor: 'KVM' is not supported; only Hyperv is"),
    ("an unquoted version", [("zones.0.pods.0.clusters.0.hosts.0.hypervisor_version", 6.3)],
     f"{HOST_A1}.hypervisor_version: must be a string; quote it: \"6.3\""),
    ("an unknown version", [("zones.0.pods.0.clusters.0.hosts.0.hypervisor_version", "10.0")],
     f"{HOST_A1}.hypervisor_version: '10.0' is not a known Hyper-V version (6.2, 6.3)"),
    # references
    ("the example of the brief: a volume on a pool that does not exist",
     [("vms.2.volumes.0.pool", "a-silver")],
     "vms[2] (web-3).volumes[0].pool: no pool named 'a-silver'"),
    ("a VM on a host that does not exist", [("vms.0.host", "hv-x")],
     "vms[0] (web-1).host: no host named 'hv-x'"),
    ("a VM with a service offering that does not exist", [("vms.0.service_offering", "huge")],
     "vms[0] (web-1).service_offering: no service offering named 'huge'"),
    ("a volume with a disk offering that does not exist", [("vms.0.volumes.1.disk_offering", "x")],
     "vms[0] (web-1).volumes[1].disk_offering: no disk offering named 'x'"),
    ("a VM of an account that is not listed", [("vms.0.account", "mallory")],
     "vms[0] (web-1).account: no account named 'mallory'"),
    # placement
    ("a volume on the local pool of another host", [("vms.0.volumes.1.pool", "hv-a2-local")],
     "vms[0] (web-1).volumes[1].pool: local pool 'hv-a2-local' belongs to host 'hv-a2', "
     "not to the VM's host 'hv-a1'"),
    ("a volume on a pool of another cluster", [("vms.0.volumes.0.pool", "b-gold")],
     "vms[0] (web-1).volumes[0].pool: pool 'b-gold' is in cluster 'cluster-b', "
     "not in the VM host's cluster 'cluster-a'"),
    ("a volume on a zone-wide pool of another zone",
     [("vms.2.volumes.1.pool", "z2-bulk")],
     "vms[2] (web-3).volumes[1].pool: zone-wide pool 'z2-bulk' is in zone 'zone2', "
     "not in the VM's zone 'zone1'"),
    ("a shared disk offering on a local pool", [("vms.0.volumes.1.disk_offering", "shared-any")],
     "vms[0] (web-1).volumes[1].pool: disk offering 'shared-any' is for shared storage but pool "
     "'hv-a1-local' is local"),
    ("a local disk offering on a shared pool", [("vms.2.volumes.1.disk_offering", "local-any")],
     "vms[2] (web-3).volumes[1].pool: disk offering 'local-any' is for local storage but pool "
     "'zone-bulk' is shared"),
    ("a tagged disk offering on a pool without the tag", [("vms.0.volumes.0.pool", "a-bronze")],
     "vms[0] (web-1).volumes[0].pool: disk offering 'shared-gold' needs storage tags [gold] "
     "but pool 'a-bronze' has [bronze]"),
    ("a ROOT volume on local storage with a shared service offering",
     [("vms.0.volumes.0.pool", "hv-a1-local"), ("vms.0.volumes.0.disk_offering", "local-any")],
     "vms[0] (web-1).volumes[0].pool: ROOT volume on local pool 'hv-a1-local' but service "
     "offering 'small-fast' uses shared storage"),
    ("a VM whose service offering needs a host tag its host lacks",
     [("vms.2.service_offering", "small-fast")],
     "vms[2] (web-3).service_offering: service offering 'small-fast' needs host tags [fast] "
     "but host 'hv-b1' has none"),
    # ROOT volumes
    ("a VM with two ROOT volumes", [("vms.2.volumes.1.type", "ROOT")],
     "vms[2] (web-3).volumes: needs exactly one ROOT volume, found 2"),
    ("a VM without a ROOT volume", [("vms.0.volumes.0.type", "DATADISK")],
     "vms[0] (web-1).volumes: needs exactly one ROOT volume, found 0"),
    ("a volume of an unknown type", [("vms.0.volumes.1.type", "SWAP")],
     "vms[0] (web-1).volumes[1].type: 'SWAP' is not one of ROOT, DATADISK"),
    # states and choices
    ("a VM state that is not Running or Stopped", [("vms.0.state", "Migrating")],
     "vms[0] (web-1).state: 'Migrating' is not one of Running, Stopped"),
    ("a pool state that does not exist", [("zones.0.pools.0.state", "Offline")],
     "zones[0] (zone1).pools[0] (zone-bulk).state: 'Offline' is not one of Up, Disabled, Maintenance"),
    ("a host status that does not exist", [("zones.0.pods.0.clusters.0.hosts.0.status", "Broken")],
     f"{HOST_A1}.status: 'Broken' is not one of Up, Down, Disconnected"),
    ("a host resource state that does not exist",
     [("zones.0.pods.0.clusters.0.hosts.0.resource_state", "Off")],
     f"{HOST_A1}.resource_state: 'Off' is not one of Enabled, Disabled, Maintenance"),
    ("a storage kind that does not exist", [("disk_offerings.0.storage", "nfs")],
     "disk_offerings[0] (shared-gold).storage: 'nfs' is not one of shared, local"),
    ("an account role that does not exist", [("accounts.0.role", "owner")],
     "accounts[0] (alice).role: 'owner' is not one of admin, domainadmin, user"),
    ("the admin account listed as a user", [("accounts.0.name", "admin")],
     "accounts[0] (admin).role: 'admin' is the root admin account"),
    # tags and addresses
    ("tags given as a string", [("zones.0.pools.0.tags", "bulk")],
     "zones[0] (zone1).pools[0] (zone-bulk).tags: must be a list of strings"),
    ("a tag with a comma", [("zones.0.pods.0.clusters.0.hosts.0.host_tags", ["a,b"])],
     f"{HOST_A1}.host_tags: 'a,b' is not a tag"),
    ("a tag listed twice", [("disk_offerings.0.tags", ["gold", "gold"])],
     "disk_offerings[0] (shared-gold).tags: lists a tag twice"),
    ("an IP address that is not one", [("zones.0.pods.0.clusters.0.hosts.0.ip_address", "10.0.0.300")],
     f"{HOST_A1}.ip_address: '10.0.0.300' is not an IP address"),
    ("an agent URL that is not http", [("zones.0.pods.0.clusters.0.hosts.0.agent_url", "ftp://x")],
     f"{HOST_A1}.agent_url: 'ftp://x' is not an http(s) URL"),
]


@pytest.mark.parametrize("edits, message", [(e, m) for _, e, m in REJECTIONS],
                         ids=[case for case, _, _ in REJECTIONS])
def test_each_rule_rejects_a_bad_inventory_with_a_message_naming_the_entry(edits, message):
    assert rejection(changed(base(), *edits)).startswith(message)


def test_the_same_cluster_and_pod_names_in_different_zones_are_allowed():
    data = base()
    assert data["zones"][0]["pods"][0]["name"] == data["zones"][1]["pods"][0]["name"]
    inventory.validate(data)


def test_a_cluster_without_a_hypervisor_is_hyperv():
    inventory.validate(changed(base(), ("zones.0.pods.0.clusters.0.hypervisor", DELETE)))


def test_a_volume_takes_its_size_from_a_fixed_size_disk_offering():
    plan = inventory._check(base())
    web3_root = next(v for v in plan.volumes if v["name"] == "web-3-root")
    assert web3_root["size"] == 8 << 20


def test_root_is_device_0_and_data_volumes_follow_in_file_order():
    data = changed(base(), ("vms.0.volumes", [
        {"name": "d1", "type": "DATADISK", "pool": "a-gold", "size": "8MiB", "disk_offering": "shared-gold"},
        {"name": "r", "type": "ROOT", "pool": "a-gold", "size": "8MiB", "disk_offering": "shared-gold"},
        {"name": "d2", "type": "DATADISK", "pool": "hv-a1-local", "size": 1, "disk_offering": "local-any"}]))
    plan = inventory._check(data)
    assert [(v["name"], v["device_id"]) for v in plan.volumes if v["vm"] == 0] == \
        [("d1", 1), ("r", 0), ("d2", 2)]


def test_pools_get_default_paths_scopes_and_types():
    pools = {p["name"]: p for p in inventory._check(base()).pools}
    assert (pools["hv-a1-local"]["path"], pools["hv-a1-local"]["scope"],
            pools["hv-a1-local"]["pool_type"], pools["hv-a1-local"]["is_local"]) == \
        ("/local/hv-a1/hv-a1-local", "HOST", "Filesystem", True)
    assert (pools["a-gold"]["path"], pools["a-gold"]["scope"], pools["a-gold"]["pool_type"]) == \
        ("/shared/a-gold", "CLUSTER", "SMB")
    assert (pools["zone-bulk"]["scope"], pools["zone-bulk"]["cluster"]) == ("ZONE", None)


def test_validation_does_not_change_the_inventory():
    data = base()
    before = copy.deepcopy(data)
    inventory.validate(data)
    assert data == before


# --------------------------------------------------------------------------- the demo

def test_the_demo_inventory_covers_every_scenario_of_the_spec():
    plan = inventory._check(inventory.parse(DEMO.read_text()))
    hosts_by_cluster: dict = {}
    for host in plan.hosts:
        hosts_by_cluster.setdefault(host["cluster"], []).append(host)
    r2_clusters = [c for c, hosts in hosts_by_cluster.items()
                   if len(hosts) >= 2 and all(h["version"] == "6.3" for h in hosts)]
    assert len(r2_clusters) >= 2
    local_owners = {p["host"] for p in plan.pools if p["scope"] == "HOST"}
    assert local_owners == set(range(len(plan.hosts)))
    for cluster in r2_clusters:
        tags = [tuple(p["tags"]) for p in plan.pools if p["scope"] == "CLUSTER" and p["cluster"] == cluster]
        assert len(tags) >= 2 and len(set(tags)) >= 2
    assert any(p["scope"] == "ZONE" for p in plan.pools)
    assert {(o["local"], bool(o["tags"])) for o in plan.disk_offerings} == \
        {(True, True), (True, False), (False, True), (False, False)}
    assert {bool(o["host_tags"]) for o in plan.service_offerings} == {True, False}
    assert {bool(h["host_tags"]) for h in plan.hosts} == {True, False}

    def shape(vm_index):
        """(number of volumes, which localities they use) of one VM."""
        volumes = [v for v in plan.volumes if v["vm"] == vm_index]
        return len(volumes), frozenset(plan.pools[v["pool"]]["is_local"] for v in volumes)

    running = [i for i, vm in enumerate(plan.vms) if vm["state"] == "Running"]
    shapes = {shape(i) for i in running}
    assert any(n == 1 and s == {False} for n, s in shapes)  # ROOT only, shared
    assert any(n == 1 and s == {True} for n, s in shapes)  # ROOT only, local
    assert any(n > 1 and s == {False} for n, s in shapes)  # ROOT + DATA, shared
    assert any(n > 1 and s == {True} for n, s in shapes)  # ROOT + DATA, local
    assert any(s == {True, False} for n, s in shapes)  # mixed
    assert any(plan.hosts[plan.vms[i]["host"]]["version"] == "6.2" for i in running)
    assert all(1 << 20 <= v["size"] <= 8 << 20 for v in plan.volumes)


# --------------------------------------------------------------------------- generate

def test_generate_with_defaults_gives_a_valid_inventory():
    inventory.validate(inventory.generate())


@pytest.mark.parametrize("sizes", [
    dict(zones=2, pods_per_zone=2, clusters_per_pod=2, hosts_per_cluster=3, zone_pools=2),
    dict(shared_pools_per_cluster=0, zone_pools=0, data_volumes_per_vm=3),
    dict(shared_pools_per_cluster=0, zone_pools=1),
    dict(vms_per_host=0),
    dict(data_volumes_per_vm=0, volume_size=1 << 20),
    dict(zones=0),
], ids=["several zones with zone pools", "local storage only", "zone pools only", "no VMs",
        "ROOT volumes only", "nothing at all"])
def test_generate_gives_valid_inventories_of_any_shape(sizes):
    inventory.validate(inventory.generate(**sizes))


def test_generate_makes_exactly_the_requested_numbers_of_things():
    data = inventory.generate(zones=2, pods_per_zone=3, clusters_per_pod=2, hosts_per_cluster=4,
                              shared_pools_per_cluster=3, zone_pools=2, vms_per_host=2,
                              data_volumes_per_vm=2)
    plan = inventory._check(data)
    hosts = 2 * 3 * 2 * 4
    assert len(plan.hosts) == hosts
    assert len(plan.pools) == hosts + 2 * 3 * 2 * 3 + 2 * 2
    assert len(plan.vms) == hosts * 2
    assert len(plan.volumes) == hosts * 2 * 3


def test_generate_is_deterministic_for_a_seed_and_varies_with_it():
    assert inventory.generate(seed=7) == inventory.generate(seed=7)
    assert inventory.generate(hosts_per_cluster=10, seed=1) != \
        inventory.generate(hosts_per_cluster=10, seed=2)


def test_generate_mixes_shared_and_local_volumes_tags_and_host_tags():
    plan = inventory._check(inventory.generate(clusters_per_pod=4, hosts_per_cluster=10,
                                               shared_pools_per_cluster=3, zone_pools=1,
                                               data_volumes_per_vm=2))
    assert {plan.pools[v["pool"]]["is_local"] for v in plan.volumes} == {True, False}
    assert {plan.pools[v["pool"]]["scope"] for v in plan.volumes} == {"HOST", "CLUSTER", "ZONE"}
    assert {bool(plan.disk_offerings[v["disk_offering"]]["tags"]) for v in plan.volumes} == {True, False}
    assert {bool(h["host_tags"]) for h in plan.hosts} == {True, False}
    assert {bool(plan.service_offerings[vm["service_offering"]]["host_tags"]) for vm in plan.vms} == \
        {True, False}
    assert any(len({plan.pools[v["pool"]]["is_local"] for v in plan.volumes if v["vm"] == i}) == 2
               for i in range(len(plan.vms)))


def test_generate_writes_the_volume_size_it_is_given():
    data = inventory.generate(volume_size="2MiB")
    assert {v["size"] for vm in data["vms"] for v in vm["volumes"]} == {"2MiB"}


def test_generate_refuses_negative_counts():
    with pytest.raises(ValueError, match="hosts_per_cluster"):
        inventory.generate(hosts_per_cluster=-1)


def test_a_generated_inventory_survives_yaml_text():
    data = inventory.generate(zone_pools=1)
    assert inventory.parse(inventory.to_yaml(data)) == data


def test_the_complete_example_of_the_documentation_validates():
    text = (DEMO.parents[1] / "docs" / "inventory.md").read_text()
    example = text.split("## A complete example")[1].split("```yaml")[1].split("```")[0]
    inventory.validate(inventory.parse(example))
