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
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterator
from urllib.parse import quote

EXPIRES_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")


# What ``quote(value, safe="*")`` leaves as it is, less "~" (which Java's encoder encodes).
_UNCHANGED = re.compile(r"[A-Za-z0-9_.*-]*\Z")


def java_encode(value: str) -> str:
    if _UNCHANGED.match(value):  # most values: ids, names, numbers
        return value
    return quote(value, safe="*").replace("~", "%7E")


def python_encode(value: str) -> str:
    return quote(value, safe="*")


def _variants(pairs: list[tuple[str, str]]) -> Iterator[str]:
    """The lower-cased strings a client may have signed, most likely first, each computed only
    when the ones before it did not match: CloudStack's order and encoding, then the variants."""
    pairs = [(k, v) for k, v in pairs if k.lower() != "signature"]
    seen: set[str] = set()
    for by_lower_name in (False, True):
        order = sorted(pairs, key=(lambda kv: kv[0].lower()) if by_lower_name else (lambda kv: kv[0]))
        for encode in (java_encode, python_encode):
            text = "&".join(f"{k}={encode(v)}" for k, v in order).lower()
            if text not in seen:
                seen.add(text)
                yield text


def canonical_strings(pairs: list[tuple[str, str]]) -> list[str]:
    """The lower-cased strings a client may have signed for these (name, value) pairs."""
    return list(_variants(pairs))


def sign(text: str, secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_pairs(pairs: list[tuple[str, str]], secret: str) -> str:
    """How a CloudStack client signs: case-sensitive sort, Java encoding, lower-cased."""
    return sign(canonical_strings(pairs)[0], secret)


def signature_matches(pairs: list[tuple[str, str]], secret: str, signature: str) -> bool:
    """Whether ``signature`` signs one of the canonical strings; a correctly signed CloudStack
    request builds one string and one HMAC (the variants are built only after a mismatch)."""
    key, given = secret.encode("utf-8"), signature.encode("utf-8", "replace")
    for text in _variants(pairs):
        digest = base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha1).digest())
        if hmac.compare_digest(digest, given):
            return True
    return False


@lru_cache(maxsize=256)
def parse_expires(value: str) -> datetime | None:
    """Parse ``expires`` (``2026-11-25T19:00:00+0000``); None when it is not a valid date.
    Remembered: a client's requests of the same second carry the same text, and ``strptime``
    costs more than the rest of the check."""
    value = value.strip().replace(" ", "+")  # an unencoded '+' arrives as a space
    if len(value) > 64:
        return None
    for fmt in EXPIRES_FORMATS:
        try:
            return datetime.strptime(value, fmt).astimezone(timezone.utc)
        except (ValueError, OverflowError):  # OverflowError: year 9999 with a negative offset
            continue
    return None
