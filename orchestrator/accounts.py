"""Accounts, users, API keys and passwords: the service behind ``motion keys``/``motion users``
and ``login``.

CloudStack roles by account type: 1 root admin, 2 domain admin, 0 user; everything lives in the
one ROOT domain. API keys belong to users; the secret key signs requests and is never logged or
listed. Passwords are kept only as slow salted hashes (``passwords``). Functions here flush but
never commit: the caller owns the unit of work.

Changes to who may call (a user or account disabled or enabled) go through ``set_state``, which
moves ``credentials_generation()`` when it flushes and again once its transaction commits: an
API process that caches credentials (``api.auth``) drops what it cached before, at once for
changes made in the same process, within its cache's lifetime for changes made elsewhere.
"""
from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import event, select
from sqlalchemy.orm import Session, joinedload

from . import passwords, sessions
from .errors import InvalidParameter
from .models import Account, Event, User

ROLES = {"admin": 1, "domainadmin": 2, "user": 0}
ROLE_NAMES = {v: k for k, v in ROLES.items()}
ROOT_DOMAIN_UUID = "8d0a5f4e-6c4b-4c55-9d7e-000000000001"  # the one domain, as CloudStack's ROOT
ROOT_DOMAIN_NAMES = {"", "/", "ROOT", "/ROOT", "/ROOT/"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}$")


_generations = itertools.count(1)
_generation = next(_generations)


@dataclass(frozen=True)
class Credentials:
    """What a signed request needs to know about the owner of an API key (one row, no ORM)."""

    user_id: int
    account_id: int
    account_type: int
    username: str
    secret_key: str | None
    active: bool  # the user and its account are both enabled


def credentials_generation() -> int:
    """A number that changes whenever this process changes a user's or an account's state."""
    return _generation


def _bump(*_args) -> None:
    global _generation
    _generation = next(_generations)


def _credentials_changed(session: Session) -> None:
    """Invalidate cached credentials now and again when ``session`` commits (a reader may cache
    the old row between this flush and the commit)."""
    _bump()
    event.listen(session, "after_commit", _bump, once=True)


def credentials_by_api_key(connection, api_key: str) -> Credentials | None:
    """The credentials of ``api_key`` in one Core statement (``connection``: a Connection or Session)."""
    row = connection.execute(_CREDENTIALS.where(User.__table__.c.api_key == api_key)).first()
    if row is None:
        return None
    return Credentials(row.id, row.account_id, row.account_type, row.username, row.secret_key,
                       row.user_state == "enabled" and row.account_state == "enabled")


def new_key() -> str:
    """A random key (URL-safe base64, 512 bits) that does not start with "-", so that it can be
    passed to a command line as an argument (``motion keys disable KEY``) without being read as
    an option."""
    while True:
        key = secrets.token_urlsafe(64)
        if not key.startswith("-"):
            return key


def _check_name(kind: str, name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise InvalidParameter(f"invalid {kind} name {name!r}: use 1 to 255 letters, digits and . _ @ + -, "
                               f"starting with a letter or digit")
    return name


def _account(session: Session, role: str, account_name: str | None) -> Account:
    """The account ``account_name`` of ``role``, created when missing."""
    if role not in ROLES:
        raise InvalidParameter(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    account_name = _check_name("account", account_name or (
        "admin" if role == "admin" else f"{role}-{secrets.token_hex(4)}"))
    account = session.scalar(select(Account).where(Account.name == account_name))
    if account is None:
        account = Account(name=account_name, account_type=ROLES[role])
        session.add(account)
        session.flush()
    elif account.account_type != ROLES[role]:
        raise InvalidParameter(f"account {account_name} exists with role "
                               f"{ROLE_NAMES.get(account.account_type, account.account_type)}, not {role}")
    return account


def _new_username(session: Session, username: str | None, account: Account) -> str:
    username = _check_name("user", username or f"{account.name}-{secrets.token_hex(4)}")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidParameter(f"user {username} already exists")
    return username


def create_key(session: Session, role: str, account_name: str | None = None,
               username: str | None = None) -> dict:
    """Create (or reuse) an account of ``role`` and a new user with a fresh key pair."""
    account = _account(session, role, account_name)
    user = User(account_id=account.id, username=_new_username(session, username, account),
                api_key=new_key(), secret_key=new_key())
    session.add(user)
    session.flush()
    return {"apikey": user.api_key, "secretkey": user.secret_key, "account": account.name,
            "username": user.username, "role": role, "user_id": user.id}


def create_user(session: Session, username: str, password: str, role: str,
                account_name: str | None = None, with_keys: bool = False) -> dict:
    """Create a user who can ``login`` with ``password`` (and sign requests when ``with_keys``)."""
    _check_name("user", username)
    try:
        password_hash = passwords.hash_password(password)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None
    account = _account(session, role, account_name or username)
    user = User(account_id=account.id, username=_new_username(session, username, account),
                password_hash=password_hash)
    if with_keys:
        user.api_key, user.secret_key = new_key(), new_key()
    session.add(user)
    session.flush()
    out = {"username": user.username, "account": account.name, "role": role, "user_id": user.id}
    if with_keys:
        out.update(apikey=user.api_key, secretkey=user.secret_key)
    return out


def list_keys(session: Session) -> list[dict]:
    """Every user with its api key, account, role and state; never a secret key or a hash."""
    rows = session.execute(select(User, Account).join(Account, User.account_id == Account.id)
                           .order_by(User.id)).all()
    return [{"apikey": u.api_key, "username": u.username, "account": a.name,
             "role": ROLE_NAMES.get(a.account_type, str(a.account_type)),
             "state": u.state if a.state == "enabled" else f"{u.state} (account {a.state})",
             "login": u.password_hash is not None} for u, a in rows]


def set_state(session: Session, state: str, api_key: str | None = None,
              account_name: str | None = None) -> list[User]:
    """Enable or disable the user owning ``api_key``, or the whole account ``account_name``.

    Disabling ends the affected users' sessions at once. Returns the users affected.
    """
    if state not in ("enabled", "disabled"):
        raise InvalidParameter(f"unknown state {state!r}")
    if api_key:
        user = user_by_api_key(session, api_key)
        if user is None:
            raise InvalidParameter("no user has this api key")
        user.state = state
        users = [user]
    elif account_name:
        account = session.scalar(select(Account).where(Account.name == account_name))
        if account is None:
            raise InvalidParameter(f"no account named {account_name}")
        account.state = state
        users = list(session.scalars(select(User).where(User.account_id == account.id)))
    else:
        raise InvalidParameter("name an api key or an account")
    session.flush()
    _credentials_changed(session)
    if state == "disabled":
        sessions.end_all(session, [u.id for u in users])
    return users


def user_by_api_key(session: Session, api_key: str) -> User | None:
    return session.scalar(select(User).options(joinedload(User.account)).where(User.api_key == api_key))


def is_active(user: User) -> bool:
    return user.state == "enabled" and user.account.state == "enabled"


def login_user(session: Session, username: str, password: str, domain: str = "") -> User | None:
    """The enabled user ``username`` of the ROOT domain whose password is ``password``, else None.

    Costs one password hash whether or not the user exists.
    """
    user = session.scalar(select(User).where(User.username == username)) if username else None
    if user is None or domain.strip() not in ROOT_DOMAIN_NAMES:
        passwords.verify_dummy()
        return None
    if not passwords.verify(password, user.password_hash) or not is_active(user):
        return None
    return user


def record(session: Session, user: User, type_: str, description: str, level: str = "INFO") -> Event:
    """An audit event for something ``user`` did (or, from the shell, had done to it)."""
    event = Event(type=type_, state="Completed", level=level, description=description[:4000],
                  account_id=user.account_id, user_id=user.id)
    session.add(event)
    session.flush()
    return event


_CREDENTIALS = (select(User.__table__.c.id, User.__table__.c.account_id, User.__table__.c.username,
                       User.__table__.c.secret_key, User.__table__.c.state.label("user_state"),
                       Account.__table__.c.account_type, Account.__table__.c.state.label("account_state"))
                .join_from(User.__table__, Account.__table__, User.__table__.c.account_id == Account.__table__.c.id))
