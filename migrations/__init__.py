"""Alembic owns the schema. ``upgrade(url)`` / ``downgrade(url, rev)`` / ``current(url)`` run it
programmatically (``motion db ...`` and the tests use them); ``alembic.ini`` is not needed."""
from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def alembic_config(url: str, stdout=None) -> Config:
    cfg = Config(stdout=stdout or io.StringIO())
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str:
    out = io.StringIO()
    command.current(alembic_config(url, stdout=out))
    return out.getvalue().strip()
