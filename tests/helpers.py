"""Small helpers for tests that need a loaded inventory and an admin key."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from api.signing import sign_pairs

from orchestrator import accounts, inventory, models
from orchestrator.db import Database
from orchestrator.motion import Caller

SMALL_INVENTORY = Path(__file__).with_name("small_inventory.yaml")


def load_small(db: Database) -> None:
    inventory.load_file(db, SMALL_INVENTORY)


def small_with_keys(url: str) -> tuple[Database, dict, dict]:
    """A database at ``url`` with the small inventory, and the API keys of an admin and a user."""
    db = Database(url)
    load_small(db)
    with db.uow() as uow:
        admin = accounts.create_key(uow.session, "admin", "admin")
        user = accounts.create_key(uow.session, "user", "alice")
        uow.commit()
    return db, admin, user


def admin_caller(db: Database) -> Caller:
    with db.uow() as uow:
        key = accounts.create_key(uow.session, "admin", "admin")
        uow.commit()
        user = accounts.user_by_api_key(uow.session, key["apikey"])
        return Caller(user.account_id, user.id, 1)


def ids(db: Database, model, *names: str) -> list[int]:
    with db.uow() as uow:
        return [uow.session.scalar(select(model.id).where(model.name == n)) for n in names]


def volume_row(db: Database, name: str) -> models.Volume:
    with db.uow() as uow:
        vol = uow.session.scalar(select(models.Volume).where(models.Volume.name == name))
        uow.session.expunge(vol)
        return vol


def count(db: Database, model) -> int:
    from sqlalchemy import func

    with db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Api:
    """Calls to the API app through Flask's test client, signed with ``key`` (none when ``None``)
    as the ``cs`` client signs: ``call(command, **params)`` returns ``(status, JSON body)``."""

    def __init__(self, client, key):
        self.client, self.key = client, key

    def call(self, command, sign=True, secret=None, method="get", extra=(), **params):
        pairs = [("command", command), ("response", "json")] + [(k, str(v)) for k, v in params.items()]
        if self.key:
            expires = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S%z")
            pairs += [("apiKey", self.key["apikey"]), ("signatureVersion", "3"), ("expires", expires)]
        pairs += list(extra)
        if sign and self.key:
            pairs.append(("signature", sign_pairs(pairs, secret or self.key["secretkey"])))
        if method == "get":
            response = self.client.get("/client/api", query_string=pairs)
        else:
            response = self.client.post("/client/api", data=dict(pairs))
        return response.status_code, response.get_json()
