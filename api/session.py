"""Login sessions on the HTTP side: the ``JSESSIONID`` cookie, ``login``, ``logout`` and resuming.

The cookie is HttpOnly and SameSite=Lax (Secure over HTTPS); it alone opens nothing: every call
must also carry the ``sessionkey`` parameter from the login response. A call whose cookie names
no live session, or whose ``sessionkey`` is missing or wrong, gets CloudStack's 401 "unable to
verify user credentials". Unlike CloudStack, a missing or wrong ``sessionkey`` does not end the
session: otherwise any web page could log a user out by making the browser call us.
"""
from __future__ import annotations

import logging

from flask import g, request

from orchestrator import accounts, sessions
from orchestrator.db import Database
from orchestrator.errors import Unauthenticated
from orchestrator.models import User
from orchestrator.motion import Caller

from .errors import LoginFailed
from .params import UUID_RE

log = logging.getLogger(__name__)
COOKIE = "JSESSIONID"
SESSION_DENIED = "unable to verify user credentials"
LOGIN_FAILED = "failed to authenticate user, check if username/password are correct"
BAD_DOMAIN = "Invalid domain id entered, please enter a valid one"


def resume(db: Database, token: str, sessionkey: str | None) -> Caller:
    """The caller of a session request; moves the session's idle deadline."""
    with db.uow() as uow:
        row = sessions.find(uow.session, token)
        if row is None:
            log.info("refused: no live session for this cookie")
            raise Unauthenticated(SESSION_DENIED)
        if not sessions.key_matches(row, sessionkey):
            log.info("refused: session request without its session key")
            raise Unauthenticated(SESSION_DENIED)
        user = uow.session.get(User, row.user_id)
        if user is None or not accounts.is_active(user):
            log.info("refused: session of a disabled user")
            raise Unauthenticated(SESSION_DENIED)
        caller = Caller(user.account_id, user.id, user.account.account_type)
        if sessions.touch(uow.session, row):
            uow.commit()
        return caller


def login(db: Database, username: str, password: str, domain: str, domain_id: str | None) -> dict:
    """Check the password, open a session, set the cookie; the ``loginresponse`` body."""
    if domain_id and domain_id != accounts.ROOT_DOMAIN_UUID:
        if not UUID_RE.match(domain_id):
            raise Unauthenticated(BAD_DOMAIN)
        raise LoginFailed(LOGIN_FAILED)
    with db.uow() as uow:
        user = accounts.login_user(uow.session, username, password, domain)
        if user is None:
            log.info("login refused for a user name of %d characters", len(username))
            raise LoginFailed(LOGIN_FAILED)
        old = sessions.find(uow.session, request.cookies.get(COOKIE))
        if old is not None:  # a new login replaces the browser's old session, as in CloudStack
            sessions.end(uow.session, old)
        opened = sessions.start(uow.session, user, request.remote_addr or "")
        accounts.record(uow.session, user, "USER.LOGIN",
                        f"user has logged in from IP Address {request.remote_addr or 'unknown'}")
        body = {"timeout": str(opened.timeout), "sessionkey": opened.sessionkey,
                "username": user.username, "userid": user.uuid, "firstname": user.username,
                "lastname": "", "account": user.account.name, "domainid": accounts.ROOT_DOMAIN_UUID,
                "type": str(user.account.account_type), "registered": "false"}
        uow.commit()
    g.motion_cookie = opened.token
    log.info("user %s logged in", body["username"])
    return body


def logout(db: Database, sessionkey: str | None) -> dict:
    """End the browser's session. Needs its session key; without a session there is nothing to end."""
    token = request.cookies.get(COOKIE)
    with db.uow() as uow:
        row = sessions.find(uow.session, token)
        if row is not None:
            if not sessions.key_matches(row, sessionkey):
                raise Unauthenticated(SESSION_DENIED)
            user = uow.session.get(User, row.user_id)
            sessions.end(uow.session, row)
            accounts.record(uow.session, user, "USER.LOGOUT", "user has logged out")
            uow.commit()
    if token:
        g.motion_cookie = ""
    return {"description": "success"}


def apply_cookie(response) -> None:
    """Set or clear the session cookie as ``login``/``logout`` asked."""
    token = g.pop("motion_cookie", None)
    if token is None:
        return
    if token:
        response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=request.is_secure,
                            path="/", max_age=sessions.MAX_SECONDS)
    else:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=request.is_secure)

