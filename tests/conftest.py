"""Shared fixtures: fresh PostgreSQL databases migrated by Alembic, Redis, helpers.

PostgreSQL and Redis come from MOTION_TEST_DATABASE_URL (a server URL whose database is used
to create per-test databases; default postgresql+psycopg://postgres@127.0.0.1:5432/postgres) and
MOTION_TEST_REDIS_URL (default redis://127.0.0.1:6379/15). When a service is missing, its tests
skip with the reason - unless MOTION_REQUIRE_SERVICES=1 (CI sets it), which makes them fail.
"""
from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("MOTION_TEST_DATABASE_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MOTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE = os.environ.get("MOTION_REQUIRE_SERVICES") == "1"
DEMO_INVENTORY = Path(__file__).resolve().parent.parent / "motion" / "demo-inventory.yaml"


def missing_service(what: str, error: Exception):
    text = f"{what} is not reachable ({error}); start it or set the MOTION_TEST_* URL"
    if REQUIRE:
        pytest.fail(text + " [MOTION_REQUIRE_SERVICES=1: missing services fail]", pytrace=False)
    pytest.skip(text)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_pg_database() -> str:
    """Create an empty database with a random name; returns its SQLAlchemy URL."""
    import psycopg

    name = f"motion_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        missing_service("PostgreSQL", exc)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database migrated to head by Alembic."""
    import migrations

    url = create_pg_database()
    migrations.upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture
def pg_empty_url():
    """A fresh PostgreSQL database with no schema at all."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def redis_url():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing_service("Redis", exc)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


@pytest.fixture
def sqlite_url(tmp_path):
    import migrations

    url = f"sqlite:///{tmp_path / 'motion.db'}"
    migrations.upgrade(url)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail (not hang) after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
