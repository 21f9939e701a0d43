"""Secrets stay secret: secret keys, passwords and session cookies never appear in a log record,
an API response (beyond the one login answer that hands out the session key) or a list command."""
from __future__ import annotations

import json
import logging

import pytest

from motion import cli
from orchestrator import accounts
from tests.integration.test_security_auth_pg import Client, env  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres
PASSWORD = "s3cret-Pa55word"


def exchange(env) -> tuple[list[str], str]:
    """A day of traffic, good and bad; returns every response (headers and body) and the cookie."""
    seen = []

    def keep(status_body_or_response):
        seen.append(json.dumps(status_body_or_response))

    admin, user = env["admin"], env["user"]
    for command in ("listZones", "listApis", "listAsyncJobs", "listVolumes", "migrateVolume"):
        keep(admin.call(command))
        keep(user.call(command))
    keep(admin.call("listZones", secret="wrong"))
    keep(admin.call("listZones", sign=False))
    keep(Client(env["flask"], {**env["keys"]["user"], "apikey": "nope"}).call("listZones"))
    for password in ("wrong", PASSWORD):
        response = env["flask"].post("/client/api", data={"command": "login", "username": "dora",
                                                          "password": password, "response": "json"})
        seen.append(json.dumps(dict(response.headers)) + response.get_data(as_text=True))
    cookie = env["flask"].get_cookie("JSESSIONID").value
    key = json.loads(response.get_data())["loginresponse"]["sessionkey"]
    for params in ({"sessionkey": key}, {}, {"sessionkey": key, "command": "logout"}):
        response = env["flask"].get("/client/api", query_string={"command": "listZones", **params})
        seen.append(response.get_data(as_text=True))
    return seen, cookie


def test_secrets_never_appear_in_logs_or_responses(env, caplog):
    caplog.set_level(logging.DEBUG)
    with env["db"].uow() as uow:
        accounts.create_user(uow.session, "dora", PASSWORD, "user")
        uow.commit()
    responses, cookie = exchange(env)
    secrets = [k["secretkey"] for k in env["keys"].values()] + [PASSWORD, cookie]
    logged = caplog.text + "".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert caplog.records, "the traffic above should have logged something"
    for secret in secrets:
        assert secret not in logged
        assert all(secret not in text for text in responses[:-4])  # before the login answer
    for secret in secrets[:-1]:
        assert all(secret not in text for text in responses)


def test_keys_list_shows_api_keys_and_never_a_secret(env, pg_url, monkeypatch, capsys):
    monkeypatch.setenv("MOTION_DATABASE_URL", pg_url)
    assert cli.main(["keys", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["apikey"] for r in rows} >= {k["apikey"] for k in env["keys"].values()}
    assert all(set(r) == {"apikey", "username", "account", "role", "state", "login"} for r in rows)
    assert cli.main(["keys", "list"]) == 0
    table = capsys.readouterr().out
    assert all(k["secretkey"] not in table and k["apikey"] in table for k in env["keys"].values())


def test_list_apis_answers_only_names_and_descriptions(env):
    body = env["user"].call("listApis")[1]["listapisresponse"]
    names = {api["name"] for api in body["api"]}
    assert {"login", "logout", "listApis", "listZones"} <= names and "migrateVolume" not in names
    assert body["count"] == len(body["api"])
    assert "migrateVolume" in {a["name"] for a in env["admin"].call("listApis")[1]["listapisresponse"]["api"]}
