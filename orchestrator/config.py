"""Process settings: read once from the environment into a frozen Settings.

This is the only module that reads ``os.environ``. The CloudStack-style *global
configuration* (``wait`` and friends) is not here: it lives in the database and is read
through ``orchestrator.globalconfig``.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

DEFAULT_AGENT_URL = "http://127.0.0.1:8250/hosts/{host}"


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know about where things are.

    database_url: SQLAlchemy URL (``postgresql+psycopg://...`` in production, SQLite file
        under ``data_dir`` by default).
    broker_url: Celery broker (``redis://...`` in production, ``memory://`` embedded).
    data_dir: where the embedded system keeps its database, agent files and cloudstack.ini.
    agent_url: template of a host agent's base URL; ``{host}`` is the host's name. A host
        row with its own ``agent_url`` overrides it.
    worker_id: identifies this process in job leases.
    lease_seconds: how long a job claim lives without a heartbeat.
    poll_interval: seconds between two looks at a running agent command.
    agent_timeout: seconds for one HTTP call to an agent.
    """

    database_url: str
    broker_url: str = "memory://"
    data_dir: str = "motion-data"
    agent_url: str = DEFAULT_AGENT_URL
    worker_id: str = "worker"
    lease_seconds: float = 30.0
    poll_interval: float = 0.2
    agent_timeout: float = 10.0

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def agent_url_for(self, host_name: str, override: str | None = None) -> str:
        return (override or self.agent_url).format(host=host_name).rstrip("/")


def sqlite_url(data_dir: str | os.PathLike) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'motion.db'}"


def from_env(env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Build Settings from ``MOTION_*`` variables; keyword arguments win over the environment."""
    env = os.environ if env is None else env
    data_dir = overrides.pop("data_dir", None) or env.get("MOTION_DATA_DIR", "motion-data")
    values = dict(
        database_url=env.get("MOTION_DATABASE_URL") or sqlite_url(data_dir),
        broker_url=env.get("MOTION_BROKER_URL", "memory://"),
        data_dir=data_dir,
        agent_url=env.get("MOTION_AGENT_URL", DEFAULT_AGENT_URL),
        worker_id=env.get("MOTION_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}",
        lease_seconds=float(env.get("MOTION_LEASE_SECONDS", "30")),
        poll_interval=float(env.get("MOTION_POLL_INTERVAL", "0.2")),
        agent_timeout=float(env.get("MOTION_AGENT_TIMEOUT", "10")),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
