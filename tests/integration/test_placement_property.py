"""A property over random small clouds: whatever the find commands list as suitable, the migrate
commands accept; whatever they list as unsuitable, the migrate commands refuse.

Each example builds a random inventory (random tags, pool states and capacities) in a fresh
SQLite database, asks findStoragePoolsForMigration / findHostsForMigration through the API, then
submits a migration to every listed candidate. An accepted job is cancelled while still queued
(no worker runs here), which puts everything back for the next candidate.
"""
from __future__ import annotations

import random
import secrets

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

import migrations
from api import create_app
from api.signing import sign_pairs
from orchestrator import accounts, inventory, models
from orchestrator.config import Settings
from orchestrator.db import Database

STATES = ("Up", "Up", "Up", "Maintenance", "Disabled")


class Api:
    def __init__(self, client, key):
        self.client, self.key = client, key

    def __call__(self, command, **params):
        pairs = [("command", command), ("response", "json"), ("apiKey", self.key["apikey"])]
        pairs += [(k, str(v)) for k, v in params.items()]
        pairs.append(("signature", sign_pairs(pairs, self.key["secretkey"])))
        response = self.client.get("/client/api", query_string=pairs)
        [body] = response.get_json().values()
        return response.status_code, body


def build(tmp_path, seed: int) -> tuple[Api, Database]:
    rng = random.Random(seed)
    data = inventory.generate(clusters_per_pod=rng.randint(1, 3), hosts_per_cluster=rng.randint(1, 3),
                              shared_pools_per_cluster=rng.randint(1, 3), zone_pools=rng.randint(0, 2),
                              vms_per_host=1, data_volumes_per_vm=rng.randint(0, 2),
                              volume_size="1MiB", seed=seed)
    url = f"sqlite:///{tmp_path / f'p{seed}-{secrets.token_hex(4)}.db'}"
    migrations.upgrade(url)
    db = Database(url)
    with db.uow() as uow:
        inventory.load(uow.session, data)
        for pool in uow.session.scalars(select(models.StoragePool)):
            pool.state = rng.choice(STATES)
            if rng.random() < 0.2:  # some pools nearly full
                pool.capacity_bytes = rng.choice([512 * 1024, 1024 * 1024, 3 * 1024 * 1024])
        for host in uow.session.scalars(select(models.Host)):
            if rng.random() < 0.15:
                host.resource_state = "Maintenance"
        key = accounts.create_key(uow.session, "admin", "admin")
        uow.commit()
    app = create_app(Settings(database_url=url), db, lambda _job_id: None)
    return Api(app.test_client(), key), db


def undo(api: Api, body: dict) -> None:
    status, job = api("cancelAsyncJob", jobid=body["jobid"])
    assert status == 200 and job["jobstatus"] == 2, job


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10_000))
def test_listed_pools_and_hosts_are_exactly_what_the_migrate_commands_accept(tmp_path, seed):
    api, db = build(tmp_path, seed)
    try:
        _, vms = api("listVirtualMachines")
        for vm in vms.get("virtualmachine", []):
            _, vols = api("listVolumes", virtualmachineid=vm["id"])
            for vol in vols["volume"]:
                _, found = api("findStoragePoolsForMigration", id=vol["id"])
                for pool in found.get("storagepool", []):
                    status, body = api("migrateVolume", volumeid=vol["id"], storageid=pool["id"],
                                       livemigrate="true")
                    if pool["suitableformigration"]:
                        assert status == 200, (pool, body)
                        undo(api, body)
                    else:
                        assert status == 431, (pool, body)
                        assert pool["reasons"][0] in body["errortext"]
            _, hosts = api("findHostsForMigration", virtualmachineid=vm["id"])
            for host in hosts.get("host", []):
                status, body = api("migrateVirtualMachineWithVolume", virtualmachineid=vm["id"],
                                   hostid=host["id"])
                if host["suitableformigration"]:
                    assert status == 200, (host, body)
                    undo(api, body)
                else:
                    assert status == 431, (host, body)
                    assert host["reasons"][0] in body["errortext"]
    finally:
        db.dispose()
