"""Accounts, users and API keys.

CloudStack roles by account type: 1 root admin, 2 domain admin, 0 user. API keys belong to
users; the secret key signs requests and is never logged or listed.
"""
from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InvalidParameter
from .models import Account, User

ROLES = {"admin": 1, "domainadmin": 2, "user": 0}
ROLE_NAMES = {v: k for k, v in ROLES.items()}


def new_key() -> str:
    return secrets.token_urlsafe(64)


def create_key(session: Session, role: str, account_name: str | None = None,
               username: str | None = None) -> dict:
    """Create (or reuse) an account of ``role`` and a new user with a fresh key pair."""
    if role not in ROLES:
        raise InvalidParameter(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    account_name = account_name or ("admin" if role == "admin" else f"{role}-{secrets.token_hex(4)}")
    account = session.scalar(select(Account).where(Account.name == account_name))
    if account is None:
        account = Account(name=account_name, account_type=ROLES[role])
        session.add(account)
        session.flush()
    elif account.account_type != ROLES[role]:
        raise InvalidParameter(f"account {account_name} exists with role "
                               f"{ROLE_NAMES.get(account.account_type, account.account_type)}, not {role}")
    user = User(account_id=account.id, username=username or f"{account_name}-{secrets.token_hex(4)}",
                api_key=new_key(), secret_key=new_key())
    session.add(user)
    session.flush()
    return {"apikey": user.api_key, "secretkey": user.secret_key, "account": account.name,
            "username": user.username, "role": role}


def user_by_api_key(session: Session, api_key: str) -> User | None:
    return session.scalar(select(User).where(User.api_key == api_key))
