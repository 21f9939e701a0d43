"""CloudStack-style global configuration kept in the ``configuration`` table.

Values are strings in the table; readers here convert them and fall back to the documented
defaults, so a missing row never breaks a migration. A unit of work that needs several values
can read them inside another statement (``column`` gives the scalar subquery) and ``remember``
them for the rest of that unit of work only: a change is seen by the next transaction.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Configuration

DEFAULTS = {
    "wait": "1800",
    "storage.overprovisioning.factor": "2",
    "pool.storage.allocated.capacity.disablethreshold": "0.85",
    "pool.storage.migration.limit": "8",
    "agent.unreachable.giveup": "1800",
    # The reconciler against the agents' truth (orchestrator.truth): seconds between two runs
    # (0 turns it off) and how many volumes and how many VMs one run checks at most.
    "reconcile.truth.interval": "300",
    "reconcile.truth.batch": "500",
    # Finished jobs older than this many minutes are expunged (orchestrator.expiry); 0: never.
    "job.expire.minutes": "1440",
    # Events older than this many days are purged (orchestrator.expiry); 0: never.
    "event.purge.delay": "15",
}


KNOWN = "motion.config"  # Session.info key: values read in this unit of work


def get(session: Session, name: str) -> str:
    known = session.info.get(KNOWN, {})
    if name in known:
        return known[name]
    row = session.get(Configuration, name)
    return row.value if row is not None else DEFAULTS[name]


def column(name: str):
    """The value of ``name`` (NULL when the row is missing) as a scalar subquery, to read it
    inside another statement."""
    return select(Configuration.value).where(Configuration.name == name).scalar_subquery()


def remember(session: Session, name: str, value: str | None) -> None:
    """Keep a value read with ``column`` for the rest of this unit of work (``None``: the default)."""
    session.info.setdefault(KNOWN, {})[name] = value if value is not None else DEFAULTS[name]


def wait_seconds(session: Session) -> int:
    """CloudStack's ``wait``: the agent deadline of a storage migration is twice this."""
    return int(float(get(session, "wait")))


def overprovisioning_factor(session: Session) -> float:
    return float(get(session, "storage.overprovisioning.factor"))


def unreachable_giveup_seconds(session: Session) -> int:
    """How long past its deadline a job keeps retrying an agent that does not answer."""
    return int(float(get(session, "agent.unreachable.giveup")))


def truth_interval_seconds(session: Session) -> float:
    """Seconds between two runs of the reconciler against the agents' truth; 0 or less: off."""
    return float(get(session, "reconcile.truth.interval"))


def truth_batch(session: Session) -> int:
    """How many volumes (and how many VMs) one run of that reconciler checks at most."""
    return max(1, int(float(get(session, "reconcile.truth.batch"))))


def job_expire_minutes(session: Session) -> float:
    """CloudStack's ``job.expire.minutes``: finished jobs older than this are expunged; 0: never."""
    return float(get(session, "job.expire.minutes"))


def event_purge_days(session: Session) -> float:
    """CloudStack's ``event.purge.delay``: events older than this many days are purged; 0: never."""
    return float(get(session, "event.purge.delay"))
