"""Authentication on PostgreSQL: every way a signed request can be wrong gets CloudStack's 401
envelope and changes nothing. Also home of the helpers the other security tests share: a client
that signs like CloudStack's, the three role keys, and a snapshot of the whole database."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from sqlalchemy import text

from api import create_app
from api.auth import CLOCK_SKEW, MAX_EXPIRES_AHEAD
from api.signing import sign_pairs
from orchestrator import accounts
from orchestrator.config import Settings
from orchestrator.db import Database
from tests.helpers import load_small

pytestmark = pytest.mark.postgres
FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def expires_in(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).strftime(FORMAT)


class Client:
    """CloudStack requests through Flask's test client, signed with ``key`` (or not)."""

    def __init__(self, flask_client, key: dict | None = None):
        self.flask, self.key = flask_client, key

    def pairs(self, command: str, params: dict, sign: bool = True, secret: str | None = None,
              expires: str | None = "default", api_key: str | None = None) -> list[tuple[str, str]]:
        pairs = [("command", command), ("response", "json")] + [(k, str(v)) for k, v in params.items()]
        if self.key:
            pairs.append(("apiKey", api_key or self.key["apikey"]))
            if expires is not None:
                value = expires_in(timedelta(minutes=5)) if expires == "default" else expires
                pairs += [("signatureVersion", "3"), ("expires", value)]
            if sign:
                pairs.append(("signature", sign_pairs(pairs, secret or self.key["secretkey"])))
        return pairs

    def call(self, command: str, method: str = "get", sign: bool = True, secret: str | None = None,
             expires: str | None = "default", api_key: str | None = None, **params):
        pairs = self.pairs(command, params, sign, secret, expires, api_key)
        return self.send(pairs, method)

    def send(self, pairs, method: str = "get"):
        body = "&".join(f"{quote(k, safe='[].')}={quote(v, safe='')}" for k, v in pairs)
        if method == "get":
            response = self.flask.get(f"/client/api?{body}")
        else:
            response = self.flask.post("/client/api", data=body,
                                       content_type="application/x-www-form-urlencoded")
        return response.status_code, response.get_json(silent=True)


_DIGEST_SQL: dict[str, str] = {}


def snapshot(db: Database) -> dict[str, str]:
    """A digest of every table's rows (a session's last_seen aside: reading moves it)."""
    with db.engine.connect() as conn:
        if db.url not in _DIGEST_SQL:
            tables = [r[0] for r in conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version' ORDER BY 1"))]
            parts = []
            for name in tables:
                row = ("row(t.id, t.token_hash, t.key_hash, t.user_id, t.expires_at)::text"
                       if name == "login_sessions" else "t::text")
                parts.append(f"SELECT '{name}', md5(coalesce(string_agg({row}, '|' ORDER BY {row}), '')) "
                             f"FROM {name} t")
            _DIGEST_SQL[db.url] = " UNION ALL ".join(parts)
        return dict(conn.execute(text(_DIGEST_SQL[db.url])).all())


def make_env(pg_url: str, **engine_kwargs) -> dict:
    db = Database(pg_url, **engine_kwargs)
    load_small(db)
    with db.uow() as uow:
        keys = {role: accounts.create_key(uow.session, role, name)
                for role, name in (("admin", "admin"), ("domainadmin", "dom"), ("user", "alice"))}
        uow.commit()
    enqueued: list[int] = []
    app = create_app(Settings(database_url=pg_url), db, enqueued.append)
    flask = app.test_client()
    return {"db": db, "app": app, "flask": flask, "keys": keys, "enqueued": enqueued,
            **{role: Client(flask, key) for role, key in keys.items()}, "anon": Client(flask)}


def assert_envelope(status: int, body: dict, code: int, name: str = "listzonesresponse") -> dict:
    assert status == code, body
    error = body[name]
    assert error["errorcode"] == code and isinstance(error["cserrorcode"], int) and error["errortext"]
    return error


@pytest.fixture
def env(pg_url):
    environment = make_env(pg_url)
    yield environment
    environment["db"].dispose()


def set_state(db: Database, state: str, api_key: str | None = None, account: str | None = None) -> None:
    with db.uow() as uow:
        accounts.set_state(uow.session, state, api_key=api_key, account_name=account)
        uow.commit()


def test_a_correctly_signed_request_is_answered(env):
    status, body = env["user"].call("listZones")
    assert status == 200 and body["listzonesresponse"]["zone"][0]["name"] == "z1"


@pytest.mark.parametrize("case,kwargs", [
    ("no signature", {"sign": False}),
    ("a signature made with another secret", {"secret": "not-the-secret"}),
    ("an api key nobody has", {"api_key": "no-such-key"}),
    ("signature version 3 without expires", {"expires": ""}),
    ("an expires that is not a date", {"expires": "next tuesday"}),
    ("an expires past the clock-skew allowance", {"expires": "EXPIRED"}),
    ("an expires too far in the future", {"expires": "FAR"}),
])
def test_each_authentication_failure_gets_401_in_the_envelope_and_changes_nothing(env, case, kwargs):
    before = snapshot(env["db"])
    if kwargs.get("expires") == "EXPIRED":
        kwargs["expires"] = expires_in(-(CLOCK_SKEW + timedelta(seconds=30)))
    if kwargs.get("expires") == "FAR":
        kwargs["expires"] = expires_in(MAX_EXPIRES_AHEAD + CLOCK_SKEW + timedelta(minutes=5))
    status, body = env["admin"].call("listZones", **kwargs)
    error = assert_envelope(status, body, 401)
    assert error["errortext"] == "unable to verify user credentials and/or request signature"
    assert snapshot(env["db"]) == before


def test_a_request_without_an_api_key_gets_401(env):
    status, body = env["anon"].call("listZones")
    assert_envelope(status, body, 401)


def test_expiry_within_the_clock_skew_allowance_and_up_to_a_day_ahead_is_accepted(env):
    assert env["admin"].call("listZones", expires=expires_in(-CLOCK_SKEW / 2))[0] == 200
    assert env["admin"].call("listZones", expires=expires_in(MAX_EXPIRES_AHEAD))[0] == 200


def test_without_signature_version_3_there_is_no_expiry_as_in_cloudstack(env):
    assert env["admin"].call("listZones", expires=None)[0] == 200


def test_a_disabled_user_gets_401_and_is_let_in_again_once_enabled(env):
    key = env["keys"]["user"]["apikey"]
    set_state(env["db"], "disabled", api_key=key)
    assert_envelope(*env["user"].call("listZones"), 401)
    set_state(env["db"], "enabled", api_key=key)
    assert env["user"].call("listZones")[0] == 200


def test_a_disabled_account_shuts_out_all_its_users(env):
    set_state(env["db"], "disabled", account="dom")
    assert_envelope(*env["domainadmin"].call("listZones"), 401)
    assert env["user"].call("listZones")[0] == 200


def test_a_request_signed_over_a_post_body_verifies_like_a_query_string(env):
    assert env["admin"].call("listZones", method="post", keyword="z")[0] == 200


def test_a_value_changed_after_signing_is_refused(env):
    pairs = env["admin"].pairs("listZones", {"keyword": "z"})
    tampered = [(k, "y" if k == "keyword" else v) for k, v in pairs]
    assert_envelope(*env["admin"].send(tampered), 401)
