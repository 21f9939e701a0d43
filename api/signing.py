"""CloudStack request signing: build the string a client signed and compare HMAC-SHA1 digests.

CloudStack sorts parameter names case-sensitively as sent, encodes each value like Java's
URLEncoder (space as %20, ``*`` kept, ``~`` encoded), joins ``name=value`` with ``&``, lower-cases
the whole string, and signs it with HMAC-SHA1 and the user's secret key (base64). Some clients
sort lower-cased names or keep ``~``; accepting those variants costs a few HMACs and breaks no one.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import quote

EXPIRES_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")


def java_encode(value: str) -> str:
    return quote(value, safe="*").replace("~", "%7E")


def python_encode(value: str) -> str:
    return quote(value, safe="*")


def canonical_strings(pairs: list[tuple[str, str]]) -> list[str]:
    """The lower-cased strings a client may have signed for these (name, value) pairs."""
    pairs = [(k, v) for k, v in pairs if k.lower() != "signature"]
    out: list[str] = []
    for order in (sorted(pairs, key=lambda kv: kv[0]), sorted(pairs, key=lambda kv: kv[0].lower())):
        for encode in (java_encode, python_encode):
            text = "&".join(f"{k}={encode(v)}" for k, v in order).lower()
            if text not in out:
                out.append(text)
    return out


def sign(text: str, secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_pairs(pairs: list[tuple[str, str]], secret: str) -> str:
    """How a CloudStack client signs: case-sensitive sort, Java encoding, lower-cased."""
    return sign(canonical_strings(pairs)[0], secret)


def signature_matches(pairs: list[tuple[str, str]], secret: str, signature: str) -> bool:
    return any(hmac.compare_digest(sign(text, secret), signature) for text in canonical_strings(pairs))


def parse_expires(value: str) -> datetime | None:
    """Parse ``expires`` (``2026-11-25T19:00:00+0000``); None when it is not a valid date."""
    value = value.strip().replace(" ", "+")  # an unencoded '+' arrives as a space
    if len(value) > 64:
        return None
    for fmt in EXPIRES_FORMATS:
        try:
            return datetime.strptime(value, fmt).astimezone(timezone.utc)
        except (ValueError, OverflowError):  # OverflowError: year 9999 with a negative offset
            continue
    return None
