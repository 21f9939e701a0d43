"""Who is calling: an API key and signature, or a login session, checked as CloudStack does.

Signed requests: ``apikey`` and ``signature`` are required; with ``signatureversion=3`` so is
``expires``. A request is refused once ``expires`` is more than ``CLOCK_SKEW`` in the past (the
allowance for a server clock running ahead of the client's; CloudStack allows none), and when
``expires`` is more than ``MAX_EXPIRES_AHEAD`` (+ the skew) in the future, so that a leaked signed
URL cannot live for years. Without version 3 there is no expiry, as in CloudStack.

Session requests carry the ``JSESSIONID`` cookie and the ``sessionkey`` parameter and no api
key (see ``api.session``). Every failure is a 401 with CloudStack's own text, so a caller learns
nothing about which part was wrong; the log says which, and never logs a secret.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from orchestrator.accounts import is_active, user_by_api_key
from orchestrator.errors import Unauthenticated
from orchestrator.motion import Caller

from . import signing

log = logging.getLogger(__name__)
DENIED = "unable to verify user credentials and/or request signature"
CLOCK_SKEW = timedelta(seconds=60)
MAX_EXPIRES_AHEAD = timedelta(hours=24)


def by_session(params: dict[str, str], cookie: str | None) -> bool:
    """A request is a session request when it has the cookie and no api key or signature."""
    return bool(cookie) and not params.get("apikey") and not params.get("signature")


def check_expires(params: dict[str, str], now: datetime | None = None) -> None:
    """Refuse a ``signatureversion=3`` request whose ``expires`` is missing, past or too far ahead."""
    if params.get("signatureversion") != "3":
        return
    now = now or datetime.now(timezone.utc)
    expires = signing.parse_expires(params.get("expires") or "")
    if expires is None:
        log.info("refused: signatureversion 3 without a valid expires")
        raise Unauthenticated(DENIED)
    if expires + CLOCK_SKEW < now:
        log.info("refused: request expired at %s", expires.isoformat())
        raise Unauthenticated(DENIED)
    if expires > now + MAX_EXPIRES_AHEAD + CLOCK_SKEW:
        log.info("refused: expires %s is more than %s ahead", expires.isoformat(), MAX_EXPIRES_AHEAD)
        raise Unauthenticated(DENIED)


def authenticate(session, pairs: list[tuple[str, str]], params: dict[str, str]) -> Caller:
    api_key, signature = params.get("apikey"), params.get("signature")
    if not api_key or not signature:
        log.info("refused: %s missing", "apikey" if not api_key else "signature")
        raise Unauthenticated(DENIED)
    check_expires(params)
    user = user_by_api_key(session, api_key)
    if user is None or not user.secret_key:
        log.info("refused: unknown api key")
        raise Unauthenticated(DENIED)
    if not is_active(user):
        log.info("refused: user %s or its account is disabled", user.username)
        raise Unauthenticated(DENIED)
    if not signing.signature_matches(pairs, user.secret_key, signature):
        log.info("refused: bad signature for user %s", user.username)
        raise Unauthenticated(DENIED)
    return Caller(account_id=user.account_id, user_id=user.id, account_type=user.account.account_type)
