"""CloudStack-style global configuration kept in the ``configuration`` table.

Values are strings in the table; readers here convert them and fall back to the documented
defaults, so a missing row never breaks a migration.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from .models import Configuration

DEFAULTS = {
    "wait": "1800",
    "storage.overprovisioning.factor": "2",
    "pool.storage.allocated.capacity.disablethreshold": "0.85",
    "pool.storage.migration.limit": "8",
    "agent.unreachable.giveup": "1800",
}


def get(session: Session, name: str) -> str:
    row = session.get(Configuration, name)
    return row.value if row is not None else DEFAULTS[name]


def wait_seconds(session: Session) -> int:
    """CloudStack's ``wait``: the agent deadline of a storage migration is twice this."""
    return int(float(get(session, "wait")))


def overprovisioning_factor(session: Session) -> float:
    return float(get(session, "storage.overprovisioning.factor"))


def unreachable_giveup_seconds(session: Session) -> int:
    """How long past its deadline a job keeps retrying an agent that does not answer."""
    return int(float(get(session, "agent.unreachable.giveup")))
