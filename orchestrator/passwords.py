"""Password hashing for ``login``: scrypt from the standard library, salted, slow on purpose.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt>$<digest>`` (salt and digest base64), so the cost
can be raised later without invalidating existing passwords: ``verify`` uses the parameters
stored with each hash. Verification always does the same work, also for an unknown user
(``verify_dummy``), so response times do not tell which usernames exist.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# 2**15 x 8 x 128 bytes = 32 MiB and about 0.1 s per hash: slow for an attacker holding the
# table, quick enough for a login. Tests may lower COST_N; stored hashes keep their own cost.
COST_N = 2 ** 15
COST_R = 8
COST_P = 1
SALT_BYTES = 16
DIGEST_BYTES = 32
MAX_PASSWORD_CHARS = 1024


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=DIGEST_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A new salted hash of ``password`` at the current cost."""
    if not password or len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a password has 1 to {MAX_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, COST_N, COST_R, COST_P)
    return f"scrypt${COST_N}${COST_R}${COST_P}${_b64(salt)}${_b64(digest)}"


def verify(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; False for a missing or unreadable hash."""
    if not stored or not password or len(password) > MAX_PASSWORD_CHARS:
        verify_dummy()
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def verify_dummy() -> None:
    """Spend the time a real verification would, for callers with no hash to check."""
    _scrypt("not a password", b"\0" * SALT_BYTES, COST_N, COST_R, COST_P)
