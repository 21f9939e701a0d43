"""Browser sessions opened by ``login``: stored in the database, so every API process sees them.

A session has two secrets. The *token* travels in the ``JSESSIONID`` cookie, which the browser
sends by itself; the *session key* is returned in the login response and must come back as the
``sessionkey`` parameter of every call, which another site cannot forge (CSRF protection, as
CloudStack does it). Only SHA-256 digests of both are stored, so a copy of the table opens no
session. A session ends at ``logout``, after ``IDLE_SECONDS`` without a call, after
``MAX_SECONDS`` in any case, or when its user or account is disabled.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, User, utcnow

IDLE_SECONDS = 1800  # CloudStack's (Tomcat's) default session timeout
MAX_SECONDS = 12 * 3600
TOUCH_EVERY_SECONDS = 60  # write last_seen at most this often


class LoginSession(Base):
    """One open session (revision 0003)."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")


@dataclass(frozen=True)
class Opened:
    token: str  # for the cookie
    sessionkey: str  # for the response body
    timeout: int  # idle seconds, CloudStack's ``timeout``


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def start(session: Session, user: User, remote_addr: str = "") -> Opened:
    """Open a session for ``user`` (the caller commits); expired sessions are swept on the way."""
    now = utcnow()
    sweep(session, now)
    token, key = secrets.token_urlsafe(32), secrets.token_urlsafe(20)
    session.add(LoginSession(token_hash=digest(token), key_hash=digest(key), user_id=user.id,
                             created=now, last_seen=now, expires_at=now + timedelta(seconds=MAX_SECONDS),
                             remote_addr=(remote_addr or "")[:64]))
    session.flush()
    return Opened(token, key, IDLE_SECONDS)


def find(session: Session, token: str | None, now: datetime | None = None) -> LoginSession | None:
    """The live session whose cookie is ``token``; None when unknown or expired."""
    if not token or len(token) > 256:
        return None
    row = session.scalar(select(LoginSession).where(LoginSession.token_hash == digest(token)))
    now = now or utcnow()
    if row is None or row.expires_at <= now or row.last_seen + timedelta(seconds=IDLE_SECONDS) <= now:
        return None
    return row


def key_matches(row: LoginSession, sessionkey: str | None) -> bool:
    return bool(sessionkey) and hmac.compare_digest(row.key_hash, digest(sessionkey))


def touch(session: Session, row: LoginSession, now: datetime | None = None) -> bool:
    """Move the idle deadline; True when something was written (the caller commits)."""
    now = now or utcnow()
    if now - row.last_seen < timedelta(seconds=TOUCH_EVERY_SECONDS):
        return False
    row.last_seen = now
    return True


def end(session: Session, row: LoginSession) -> None:
    session.delete(row)
    session.flush()


def end_all(session: Session, user_ids: list[int]) -> int:
    """End every session of these users (when they are disabled)."""
    if not user_ids:
        return 0
    return session.execute(delete(LoginSession).where(LoginSession.user_id.in_(user_ids))).rowcount


def sweep(session: Session, now: datetime | None = None) -> int:
    now = now or utcnow()
    idle_cutoff = now - timedelta(seconds=IDLE_SECONDS)
    return session.execute(delete(LoginSession).where(
        (LoginSession.expires_at <= now) | (LoginSession.last_seen <= idle_cutoff))).rowcount
