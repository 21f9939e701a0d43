"""Make sure every volume's data exists on its host agent (a real file of its size), and that
every running VM is known to its host's agent.

Inventory load records volumes in the database only; this asks the agents to create each
volume's file on its recorded pool (idempotent: an existing complete file is left alone), as
CloudStack creates volumes through its agents.
"""
from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .config import Settings
from .db import Database
from .models import Host, StoragePool, Volume, VirtualMachine
from .jobkinds import pool_to


class VolumeCreator(Protocol):
    def create_volume(self, base_url: str, payload: dict) -> dict: ...
    def register_vm(self, base_url: str, payload: dict) -> dict: ...


def agent_host_for(session, volume: Volume) -> Host | None:
    """The host whose agent should hold the file: the VM's host, else the local pool's host, else
    any Up host that reaches the pool."""
    if volume.vm is not None and volume.vm.host is not None:
        return volume.vm.host
    pool: StoragePool = volume.pool
    if pool.host is not None:
        return pool.host
    query = select(Host).where(Host.zone_id == pool.zone_id)
    if pool.cluster_id is not None:
        query = query.where(Host.cluster_id == pool.cluster_id)
    return session.scalars(query.order_by(Host.id).limit(1)).first()


def provision_volumes(db: Database, agent: VolumeCreator, settings: Settings) -> int:
    """Create missing volume files; returns how many volumes were checked."""
    with db.uow() as uow:
        s = uow.session
        volumes = s.scalars(select(Volume).options(
            selectinload(Volume.pool), selectinload(Volume.vm).selectinload(VirtualMachine.host))
            .order_by(Volume.id)).all()
        jobs = []
        for volume in volumes:
            host = agent_host_for(s, volume)
            if host is None:
                continue
            jobs.append((settings.agent_url_for(host.name, host.agent_url),
                         {"id": volume.uuid, "path": volume.path, "pool": pool_to(volume.pool),
                          "size": volume.size,
                          "vm": volume.vm.instance_name if volume.vm else None}))
        vms = []
        for vm in s.scalars(select(VirtualMachine).options(selectinload(VirtualMachine.host))
                            .where(VirtualMachine.state == "Running").order_by(VirtualMachine.id)):
            if vm.host is None:
                continue
            vm_volumes = [v for v in volumes if v.vm_id == vm.id]
            vms.append((settings.agent_url_for(vm.host.name, vm.host.agent_url),
                        {"name": vm.instance_name, "uuid": vm.uuid,
                         "volumes": [{"id": v.uuid, "path": v.path, "pool": pool_to(v.pool)}
                                     for v in vm_volumes]}))
    for base_url, payload in jobs:
        agent.create_volume(base_url, payload)
    for base_url, payload in vms:  # the VMs run on their hosts (the agent's guest simulation)
        agent.register_vm(base_url, payload)
    return len(jobs)
