"""Browser sessions on PostgreSQL: login gives a session key and a cookie, calls need both, logout
and expiry end the session, and a session opened by one API process works in another."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from api import create_app
from orchestrator import accounts, models, sessions
from orchestrator.config import Settings
from orchestrator.db import Database
from tests.integration.test_security_auth_pg import Client, assert_envelope, env, snapshot  # noqa: F401

pytestmark = pytest.mark.postgres
PASSWORD = "correct horse battery staple "  # the trailing space is part of it


@pytest.fixture
def users(env):
    with env["db"].uow() as uow:
        accounts.create_user(uow.session, "carol", PASSWORD, "user")
        accounts.create_user(uow.session, "root", PASSWORD, "admin", "admin")
        uow.commit()
    return env


def login(client, username="carol", password=PASSWORD, **extra):
    """POST a login as a browser would; returns (status, body)."""
    response = client.post("/client/api", data={"command": "login", "response": "json",
                                                "username": username, "password": password, **extra})
    return response.status_code, response.get_json(), response


def session_call(client, command, sessionkey=None, **params):
    query = {"command": command, "response": "json", **params}
    if sessionkey is not None:
        query["sessionkey"] = sessionkey
    response = client.get("/client/api", query_string=query)
    return response.status_code, response.get_json()


def test_login_answers_cloudstacks_fields_and_sets_a_protected_cookie(users):
    status, body, response = login(users["flask"], domain="/")
    assert status == 200
    answer = body["loginresponse"]
    assert answer["username"] == "carol" and answer["type"] == "0" and answer["account"] == "carol"
    assert answer["timeout"] == str(sessions.IDLE_SECONDS) and answer["sessionkey"]
    assert answer["domainid"] == accounts.ROOT_DOMAIN_UUID and answer["userid"]
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("JSESSIONID=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert answer["sessionkey"] not in cookie


def test_a_session_call_needs_the_session_key_and_a_missing_one_does_not_end_the_session(users):
    key = login(users["flask"])[1]["loginresponse"]["sessionkey"]
    status, body = session_call(users["flask"], "listZones", key)
    assert status == 200 and body["listzonesresponse"]["count"] == 1
    for wrong in (None, "", "not-the-key", key + "x"):
        status, body = session_call(users["flask"], "listZones", wrong)
        assert_envelope(status, body, 401)["errortext"] == "unable to verify user credentials"
    assert session_call(users["flask"], "listZones", key)[0] == 200


def test_the_session_key_alone_without_the_cookie_opens_nothing(users):
    key = login(users["flask"])[1]["loginresponse"]["sessionkey"]
    stranger = users["app"].test_client()
    assert_envelope(*session_call(stranger, "listZones", key), 401)


def test_a_session_has_its_users_role(users):
    user_key = login(users["flask"])[1]["loginresponse"]["sessionkey"]
    status, body = session_call(users["flask"], "listStoragePools", user_key)
    assert status == 432 and "not available for user" in body["errorresponse"]["errortext"]
    admin = users["app"].test_client()
    admin_key = login(admin, "root")[1]["loginresponse"]["sessionkey"]
    assert session_call(admin, "listStoragePools", admin_key)[0] == 200


def test_logout_ends_the_session_and_both_are_recorded_as_events_of_the_user(users):
    key = login(users["flask"], domain="ROOT")[1]["loginresponse"]["sessionkey"]
    response = users["flask"].get("/client/api", query_string={
        "command": "logout", "response": "json", "sessionkey": key})
    assert response.status_code == 200 and response.get_json() == {"logoutresponse": {"description": "success"}}
    assert_envelope(*session_call(users["flask"], "listZones", key), 401)
    with users["db"].uow() as uow:
        carol = uow.session.scalar(select(models.User).where(models.User.username == "carol"))
        events = uow.session.scalars(select(models.Event).order_by(models.Event.id)).all()
        assert [(e.type, e.user_id) for e in events] == [("USER.LOGIN", carol.id), ("USER.LOGOUT", carol.id)]
        assert uow.session.scalars(select(sessions.LoginSession)).all() == []


def test_logout_without_the_session_key_is_refused_and_the_session_lives_on(users):
    key = login(users["flask"])[1]["loginresponse"]["sessionkey"]
    assert_envelope(*session_call(users["flask"], "logout"), 401, "logoutresponse")
    assert session_call(users["flask"], "listZones", key)[0] == 200


@pytest.mark.parametrize("username,password,extra", [
    ("carol", "wrong", {}),
    ("carol", PASSWORD.strip(), {}),
    ("nobody", PASSWORD, {}),
    ("carol", PASSWORD, {"domain": "/other/"}),
    ("carol", PASSWORD, {"domainid": "00000000-0000-0000-0000-000000000000"}),
])
def test_a_failed_login_gets_531_opens_no_session_and_changes_nothing(users, username, password, extra):
    before = snapshot(users["db"])
    status, body, response = login(users["flask"], username, password, **extra)
    error = assert_envelope(status, body, 531, "loginresponse")
    assert error["errortext"] == "failed to authenticate user, check if username/password are correct"
    assert "Set-Cookie" not in response.headers
    assert snapshot(users["db"]) == before


def test_a_login_with_a_malformed_domain_id_gets_401(users):
    status, body, _ = login(users["flask"], domainid="not-an-id")
    assert_envelope(status, body, 401, "loginresponse")


def test_a_disabled_user_can_neither_log_in_nor_keep_a_session(users):
    key = login(users["flask"])[1]["loginresponse"]["sessionkey"]
    with users["db"].uow() as uow:
        accounts.set_state(uow.session, "disabled", account_name="carol")
        uow.commit()
    assert_envelope(*session_call(users["flask"], "listZones", key), 401)
    assert login(users["flask"])[0] == 531


@pytest.mark.parametrize("column,age", [("last_seen", sessions.IDLE_SECONDS + 1), ("expires_at", 1)])
def test_a_session_expires_when_idle_too_long_or_past_its_lifetime(users, column, age):
    key = login(users["flask"])[1]["loginresponse"]["sessionkey"]
    with users["db"].uow() as uow:
        then = models.utcnow() - timedelta(seconds=age)
        uow.session.execute(update(sessions.LoginSession).values({column: then}))
        uow.commit()
    assert_envelope(*session_call(users["flask"], "listZones", key), 401)


def test_a_session_opened_by_one_api_process_works_in_another(users, pg_url):
    key = login(users["flask"])[1]["loginresponse"]["sessionkey"]
    second_db = Database(pg_url)  # its own engine and pool, as in a second gunicorn worker
    try:
        other = create_app(Settings(database_url=pg_url), second_db, lambda _job: None).test_client()
        other.set_cookie("JSESSIONID", users["flask"].get_cookie("JSESSIONID").value)
        assert session_call(other, "listZones", key)[0] == 200
    finally:
        second_db.dispose()


def test_passwords_are_stored_only_as_salted_slow_hashes(users):
    with users["db"].uow() as uow:
        hashes = list(uow.session.scalars(select(models.User.password_hash).where(
            models.User.password_hash.is_not(None))))
    assert len(hashes) == 2 and len(set(hashes)) == 2  # same password, different salts
    assert all(h.startswith("scrypt$") and PASSWORD.strip() not in h for h in hashes)


def test_a_signed_request_is_not_confused_by_a_session_cookie(users):
    login(users["flask"])
    status, _ = Client(users["flask"], users["keys"]["admin"]).call("listStoragePools")
    assert status == 200
