"""Loading a validated inventory into the database, in bulk, through the caller's session.

``load`` checks the inventory, refuses names the database already holds, and inserts every
kind with one bulk statement (COPY on PostgreSQL with psycopg), without committing; the
caller's rollback undoes it all. ``load_file`` parses, loads and commits in one unit of work.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import String, cast, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import InventoryError
from .inventory_check import _WHAT, _check, _Plan
from .inventory_format import ADMIN_ACCOUNT, HYPERVISOR
from .inventory_yaml import parse
from .models import (Account, Cluster, DiskOffering, Host, Pod, ServiceOffering, StoragePool,
                     VirtualMachine, Volume, Zone, new_uuid, utcnow)


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _refuse_existing(session: Session, plan: _Plan) -> None:
    """Loading adds to the cloud; anything already named in the database is a conflict."""
    kinds = [("zones", Zone), ("hosts", Host), ("pools", StoragePool),
             ("disk_offerings", DiskOffering), ("service_offerings", ServiceOffering),
             ("vms", VirtualMachine)]
    conflicts = []
    for kind, model in kinds:
        records = getattr(plan, kind)
        names = [record["name"] for record in records]
        for chunk in _chunks(names, 900):  # stays under SQLite's old limit of 999 parameters
            for name in session.scalars(select(model.name).where(model.name.in_(chunk))):
                where = records[plan.index[kind][name]]["where"]
                conflicts.append(f"{where}: a {_WHAT[kind]} named '{name}' already exists")
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise InventoryError(conflicts[0] + more)


def _ensure_accounts(session: Session, plan: _Plan, now) -> tuple[dict, int]:
    """Account name -> id, creating the root admin and the listed accounts when missing."""
    wanted = [dict(name=ADMIN_ACCOUNT, where="accounts (root admin)", account_type=1)]
    wanted += [a for a in plan.accounts if a["name"] != ADMIN_ACCOUNT]
    ids, created = {}, 0
    for account in wanted:
        row = session.execute(select(Account.id, Account.account_type)
                              .where(Account.name == account["name"])).first()
        if row is None:
            row = session.execute(insert(Account).returning(Account.id, Account.account_type)
                                  .values(name=account["name"], uuid=new_uuid(), created=now,
                                          account_type=account["account_type"],
                                          state="enabled")).first()
            created += 1
        elif row.account_type != account["account_type"]:
            raise InventoryError(f"{account['where']}: account '{account['name']}' already exists "
                                 f"with account type {row.account_type}, "
                                 f"not {account['account_type']}")
        ids[account["name"]] = row.id
    return ids, created


def _insert(session: Session, model, rows: list[dict], ids: bool = True) -> list[int]:
    """Bulk insert of rows that all have the same keys; returns their ids in order (if ``ids``).

    Core, not ORM, on purpose: the ORM splits rows by which values are None (local pools have a
    host, cluster pools do not), and interleaved rows then go one tiny batch at a time.
    """
    if not rows:
        return []
    table = model.__table__
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        return _copy(connection, table, rows, ids)
    if not ids:
        session.execute(table.insert(), rows)
        return []
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return list(session.execute(statement, rows).scalars())


def _copy(connection, table, rows: list[dict], ids: bool) -> list[int]:
    """PostgreSQL: take ids from the table's sequence, then COPY the rows in.

    Many times faster than multi-row INSERTs for the big tables, whose statement text psycopg
    would otherwise scan once per thousand rows. Runs in the session's own transaction.
    """
    import psycopg
    from psycopg import sql

    cursor = connection.connection.driver_connection.cursor()
    new_ids = []
    if ids:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                       "FROM generate_series(1, %s)", (table.name, len(rows)))
        new_ids = [row[0] for row in cursor.fetchall()]
    columns = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, (["id"] if ids else []) + columns)))
    try:
        with cursor.copy(statement) as copy:
            for index, row in enumerate(rows):
                values = [row[column] for column in columns]
                copy.write_row([new_ids[index], *values] if ids else values)
    except psycopg.IntegrityError as exc:
        # Raw psycopg errors bypass SQLAlchemy; wrap them as it would.
        raise IntegrityError(statement.as_string(cursor), None, exc) from exc
    finally:
        cursor.close()
    return new_ids


def _named(records: list, now, **columns) -> list[dict]:
    """Rows for ``records``: name, a fresh uuid, the creation time and per-record columns."""
    return [dict(name=r["name"], uuid=new_uuid(), created=now,
                 **{column: value(r) for column, value in columns.items()}) for r in records]


def load(session: Session, data: dict) -> dict:
    """Validate ``data`` and insert all of it through ``session`` without committing.

    Returns how many objects of each kind were created (``accounts`` counts only new ones).
    Raises InventoryError, naming the entry, when the inventory is invalid or names something
    that already exists; the caller's rollback then leaves the database as it was.
    """
    plan = _check(data)
    _refuse_existing(session, plan)
    try:
        return _write(session, plan, utcnow())
    except IntegrityError as exc:
        # Someone else wrote one of our names between the check above and our insert.
        raise InventoryError(f"inventory: conflicts with objects written meanwhile: {exc.orig}") from exc


def _write(session: Session, plan: _Plan, now) -> dict:
    accounts, accounts_created = _ensure_accounts(session, plan, now)
    disk_ids, service_ids = _load_offerings(session, plan, now)
    ids = _load_tree(session, plan, now)
    vm_ids = _load_vms(session, plan, now, accounts, ids["zones"], ids["hosts"], service_ids)
    _load_volumes(session, plan, now, accounts, ids["zones"], vm_ids, ids["pools"], disk_ids)
    return dict(**{kind: len(kind_ids) for kind, kind_ids in ids.items()},
                disk_offerings=len(disk_ids), service_offerings=len(service_ids),
                accounts=accounts_created, vms=len(vm_ids), volumes=len(plan.volumes))


def _load_offerings(session: Session, plan: _Plan, now) -> tuple[list, list]:
    disk_ids = _insert(session, DiskOffering, _named(
        plan.disk_offerings, now, display_text=lambda r: r["display_text"],
        use_local_storage=lambda r: r["local"], tags=lambda r: ",".join(r["tags"]),
        disk_size=lambda r: r["size"]))
    service_ids = _insert(session, ServiceOffering, _named(
        plan.service_offerings, now, display_text=lambda r: r["display_text"],
        cpu_number=lambda r: r["cpu_number"], cpu_speed=lambda r: r["cpu_speed"],
        memory=lambda r: r["memory"], host_tags=lambda r: ",".join(r["host_tags"]),
        use_local_storage=lambda r: r["local"]))
    return disk_ids, service_ids


def _load_tree(session: Session, plan: _Plan, now) -> dict:
    """Zones, pods, clusters, hosts and pools; their ids by kind, in plan order."""
    def optional(ids, index):
        return None if index is None else ids[index]

    zones = _insert(session, Zone, _named(plan.zones, now))
    pods = _insert(session, Pod, _named(plan.pods, now, zone_id=lambda r: zones[r["zone"]]))
    clusters = _insert(session, Cluster, _named(
        plan.clusters, now, zone_id=lambda r: zones[r["zone"]], pod_id=lambda r: pods[r["pod"]],
        hypervisor=lambda r: HYPERVISOR))
    hosts = _insert(session, Host, _named(
        plan.hosts, now, zone_id=lambda r: zones[r["zone"]], pod_id=lambda r: pods[r["pod"]],
        cluster_id=lambda r: clusters[r["cluster"]], hypervisor=lambda r: HYPERVISOR,
        hypervisor_version=lambda r: r["version"], cpu_number=lambda r: r["cpu_number"],
        cpu_speed=lambda r: r["cpu_speed"], memory=lambda r: r["memory"],
        host_tags=lambda r: ",".join(r["host_tags"]), ip_address=lambda r: r["ip_address"],
        agent_url=lambda r: r["agent_url"], status=lambda r: r["status"],
        resource_state=lambda r: r["resource_state"],
        max_storage_migrations=lambda r: r["max_storage_migrations"]))
    pools = _insert(session, StoragePool, _named(
        plan.pools, now, zone_id=lambda r: zones[r["zone"]],
        pod_id=lambda r: optional(pods, r["pod"]), cluster_id=lambda r: optional(clusters, r["cluster"]),
        host_id=lambda r: optional(hosts, r["host"]), scope=lambda r: r["scope"],
        is_local=lambda r: r["is_local"], pool_type=lambda r: r["pool_type"],
        path=lambda r: r["path"], tags=lambda r: ",".join(r["tags"]),
        capacity_bytes=lambda r: r["capacity"], state=lambda r: r["state"]))
    return dict(zones=zones, pods=pods, clusters=clusters, hosts=hosts, pools=pools)


def _load_vms(session, plan, now, accounts, zone_ids, host_ids, service_ids) -> list[int]:
    def host_of(vm):
        return plan.hosts[vm["host"]]

    # Like CloudStack, a stopped VM has no host, only the last host it ran on.
    vm_ids = _insert(session, VirtualMachine, _named(
        plan.vms, now, display_name=lambda r: r["name"], instance_name=lambda r: "",
        state=lambda r: r["state"], zone_id=lambda r: zone_ids[host_of(r)["zone"]],
        host_id=lambda r: host_ids[r["host"]] if r["state"] == "Running" else None,
        last_host_id=lambda r: host_ids[r["host"]] if r["state"] == "Stopped" else None,
        service_offering_id=lambda r: service_ids[r["service_offering"]],
        account_id=lambda r: accounts[r["account"]], hypervisor=lambda r: HYPERVISOR))
    # CloudStack's instance name needs the VM's own id, known only after the insert.
    table = VirtualMachine.__table__
    name = (literal("i-") + cast(table.c.account_id, String) + literal("-")
            + cast(table.c.id, String) + literal("-VM"))
    for chunk in _chunks(vm_ids, 1000):
        session.execute(update(table).where(table.c.id.in_(chunk)).values(instance_name=name))
    return vm_ids


def _load_volumes(session, plan, now, accounts, zone_ids, vm_ids, pool_ids, disk_ids) -> None:
    rows = []
    for volume in plan.volumes:
        vm = plan.vms[volume["vm"]]
        volume_uuid = new_uuid()
        rows.append(dict(
            name=volume["name"], uuid=volume_uuid, created=now, path=f"{volume_uuid}.vhdx",
            zone_id=zone_ids[plan.hosts[vm["host"]]["zone"]], vm_id=vm_ids[volume["vm"]],
            device_id=volume["device_id"], volume_type=volume["type"],
            pool_id=pool_ids[volume["pool"]], last_pool_id=None, size=volume["size"],
            state="Ready", disk_offering_id=disk_ids[volume["disk_offering"]],
            account_id=accounts[vm["account"]]))
    _insert(session, Volume, rows, ids=False)


def load_file(db, path) -> dict:
    """Parse, validate and load the file at ``path`` in one unit of work, and commit."""
    data = parse(Path(path).read_text(encoding="utf-8"))
    with db.uow() as uow:
        counts = load(uow.session, data)
        uow.commit()
    return counts
