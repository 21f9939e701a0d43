"""A database outage seen from the API, on PostgreSQL: while the database refuses connections,
every command answers CloudStack's 530 with a text that says the database is unavailable (not
"internal error"), the log has one line per request and no traceback; once the database is back
the same process answers again, with nothing restarted."""
from __future__ import annotations

import logging
import uuid

import psycopg
import pytest

from orchestrator import models
from tests.conftest import PG_ADMIN_URL, _plain
from tests.helpers import ids
from tests.integration.test_security_auth_pg import make_env

pytestmark = pytest.mark.postgres

TEXT = "The database is unavailable at the moment; try again shortly"


def allow_connections(pg_url: str, allowed: bool) -> None:
    """Open or close the test's database to new connections; closing also ends the open ones."""
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                         "AND pid <> pg_backend_pid()", (name,))


def test_an_outage_answers_530_saying_so_and_the_api_recovers_by_itself(pg_url, caplog):
    env = make_env(pg_url)
    admin = env["admin"]
    [volume] = ids(env["db"], models.Volume, "vm1-root")
    [pool] = ids(env["db"], models.StoragePool, "c1-gold-2")
    with env["db"].uow() as uow:
        volume_uuid = uow.session.get(models.Volume, volume).uuid
        pool_uuid = uow.session.get(models.StoragePool, pool).uuid
    assert admin.call("listZones")[0] == 200
    requests = [("listZones", {}), ("queryAsyncJobResult", {"jobid": str(uuid.uuid4())}),
                ("migrateVolume", {"volumeid": volume_uuid, "storageid": pool_uuid, "livemigrate": "true"})]
    allow_connections(pg_url, False)
    try:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="api.app"):
            for command, params in requests:
                status, body = admin.call(command, **params)
                assert status == 530, (command, body)
                error = body[f"{command.lower()}response"]
                assert (error["errorcode"], error["errortext"]) == (530, TEXT)
        lines = [r for r in caplog.records if r.name == "api.app"]
        assert len(lines) == len(requests)
        assert all("the database is unavailable" in r.getMessage() and r.exc_info is None for r in lines)
        assert env["enqueued"] == []
    finally:
        allow_connections(pg_url, True)
    # Back: the same app answers, and the submission refused during the outage goes through now
    assert admin.call("listZones")[0] == 200
    status, body = admin.call(requests[2][0], **requests[2][1])
    assert status == 200 and body["migratevolumeresponse"]["jobid"]
    assert len(env["enqueued"]) == 1
    env["db"].dispose()
