"""Who is calling: API key + signature (with ``signatureversion=3`` expiry), as CloudStack checks it.

Every failure is a 401 with the same text CloudStack gives, so a caller learns nothing about
which part was wrong; the log says which.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from orchestrator.accounts import user_by_api_key
from orchestrator.errors import Unauthenticated
from orchestrator.motion import Caller

from . import signing

log = logging.getLogger(__name__)
DENIED = "unable to verify user credentials and/or request signature"


def authenticate(session, pairs: list[tuple[str, str]], params: dict[str, str]) -> Caller:
    api_key, signature = params.get("apikey"), params.get("signature")
    if not api_key or not signature:
        log.info("refused: %s missing", "apikey" if not api_key else "signature")
        raise Unauthenticated(DENIED)
    if params.get("signatureversion") == "3":
        expires = signing.parse_expires(params.get("expires") or "")
        if expires is None:
            log.info("refused: signatureversion 3 without a valid expires")
            raise Unauthenticated(DENIED)
        if expires < datetime.now(timezone.utc):
            log.info("refused: request expired at %s", expires)
            raise Unauthenticated(DENIED)
    user = user_by_api_key(session, api_key)
    if user is None or not user.secret_key:
        log.info("refused: unknown api key")
        raise Unauthenticated(DENIED)
    if user.state != "enabled" or user.account.state != "enabled":
        log.info("refused: user %s or its account is disabled", user.username)
        raise Unauthenticated(DENIED)
    if not signing.signature_matches(pairs, user.secret_key, signature):
        log.info("refused: bad signature for user %s", user.username)
        raise Unauthenticated(DENIED)
    return Caller(account_id=user.account_id, user_id=user.id, account_type=user.account.account_type)
