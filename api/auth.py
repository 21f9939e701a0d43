"""Who is calling: an API key and signature, or a login session, checked as CloudStack does.

Signed requests: ``apikey`` and ``signature`` are required; with ``signatureversion=3`` so is
``expires``. A request is refused once ``expires`` is more than ``CLOCK_SKEW`` in the past (the
allowance for a server clock running ahead of the client's; CloudStack allows none), and when
``expires`` is more than ``MAX_EXPIRES_AHEAD`` (+ the skew) in the future, so that a leaked signed
URL cannot live for years. Without version 3 there is no expiry, as in CloudStack.

Session requests carry the ``JSESSIONID`` cookie and the ``sessionkey`` parameter and no api
key (see ``api.session``). Every failure is a 401 with CloudStack's own text, so a caller learns
nothing about which part was wrong; the log says which, and never logs a secret.

Credentials are cached per process (``CredentialsCache``): an API key's user, secret, account and
role are read from the database at most once per ``CREDENTIALS_TTL`` seconds, and only while the
user and its account are enabled (unknown and disabled keys are looked up every time, so a
refusal never outlives a re-enable). Disabling a user or an account, from any process, takes
effect within ``CREDENTIALS_TTL``; in the process that made the change (``accounts.set_state``)
at once. The signature is still checked on every request against the cached secret. On SQLite
(the embedded system, whose ``motion keys`` runs in another process and whose reads cost no
round trip) nothing is cached.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from orchestrator.accounts import Credentials, credentials_by_api_key, credentials_generation
from orchestrator.errors import Unauthenticated
from orchestrator.motion import Caller

from . import signing

log = logging.getLogger(__name__)
DENIED = "unable to verify user credentials and/or request signature"
CLOCK_SKEW = timedelta(seconds=60)
MAX_EXPIRES_AHEAD = timedelta(hours=24)
CREDENTIALS_TTL = 2.0  # seconds a cached API key may lag behind the database (see above)
CREDENTIALS_CACHED = 1024  # keys kept per process; the cache starts over when full


class CredentialsCache:
    """API key -> ``Credentials`` of an enabled user, each for at most ``ttl`` seconds and only
    while ``accounts.credentials_generation()`` has not moved. ``ttl`` 0 caches nothing."""

    def __init__(self, ttl: float = CREDENTIALS_TTL, size: int = CREDENTIALS_CACHED):
        self.ttl, self.size = ttl, size
        self._entries: dict[str, tuple[Credentials, float, int]] = {}

    def get(self, api_key: str, load: Callable[[str], Credentials | None]) -> Credentials | None:
        now, generation = time.monotonic(), credentials_generation()
        entry = self._entries.get(api_key)
        if entry is not None and entry[1] > now and entry[2] == generation:
            return entry[0]
        credentials = load(api_key)
        if credentials is not None and credentials.active and credentials.secret_key and self.ttl > 0:
            if len(self._entries) >= self.size:
                self._entries.clear()
            # ``generation`` was read before the load: a change committed meanwhile invalidates it.
            self._entries[api_key] = (credentials, now + self.ttl, generation)
        else:
            self._entries.pop(api_key, None)
        return credentials

    def clear(self) -> None:
        self._entries.clear()


def by_session(params: dict[str, str], cookie: str | None) -> bool:
    """A request is a session request when it has the cookie and no api key or signature."""
    return bool(cookie) and not params.get("apikey") and not params.get("signature")


def check_expires(params: dict[str, str], now: datetime | None = None) -> None:
    """Refuse a ``signatureversion=3`` request whose ``expires`` is missing, past or too far ahead."""
    refusal = _expiry_refusal(params, now)
    if refusal:
        log.info("refused: %s", refusal)
        raise Unauthenticated(DENIED)


def _expiry_refusal(params: dict[str, str], now: datetime | None = None) -> str | None:
    if params.get("signatureversion") != "3":
        return None
    now = now or datetime.now(timezone.utc)
    expires = signing.parse_expires(params.get("expires") or "")
    if expires is None:
        return "signatureversion 3 without a valid expires"
    if expires + CLOCK_SKEW < now:
        return f"request expired at {expires.isoformat()}"
    if expires > now + MAX_EXPIRES_AHEAD + CLOCK_SKEW:
        return f"expires {expires.isoformat()} is more than {MAX_EXPIRES_AHEAD} ahead"
    return None


def authenticate(session, pairs: list[tuple[str, str]], params: dict[str, str]) -> Caller:
    """The caller of a signed request, read through ``session`` (no cache)."""
    return authenticate_signed(lambda key: credentials_by_api_key(session, key), pairs, params)


def authenticate_signed(load: Callable[[str], Credentials | None], pairs: list[tuple[str, str]],
                        params: dict[str, str], cache: CredentialsCache | None = None) -> Caller:
    """The caller of a signed request; ``load`` reads an API key's credentials (through ``cache``)."""
    caller = signed_caller(load, pairs, params, cache)
    if isinstance(caller, str):
        log.info("refused: %s", caller)
        raise Unauthenticated(DENIED)
    return caller


def signed_caller(load: Callable[[str], Credentials | None], pairs: list[tuple[str, str]],
                  params: dict[str, str], cache: CredentialsCache | None = None) -> Caller | str:
    """``authenticate_signed`` without logging or raising: the caller, or why it is refused."""
    api_key, signature = params.get("apikey"), params.get("signature")
    if not api_key or not signature:
        return f"{'apikey' if not api_key else 'signature'} missing"
    refusal = _expiry_refusal(params)
    if refusal:
        return refusal
    user = cache.get(api_key, load) if cache is not None else load(api_key)
    if user is None or not user.secret_key:
        return "unknown api key"
    if not user.active:
        return f"user {user.username} or its account is disabled"
    if not signing.signature_matches(pairs, user.secret_key, signature):
        return f"bad signature for user {user.username}"
    return Caller(account_id=user.account_id, user_id=user.user_id, account_type=user.account_type)
