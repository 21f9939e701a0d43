"""What a request may look like before any command sees it: sizes, counts and characters.

Oversized requests and absurd values are refused here, early and cheaply, before a database
query or a signature check: a query string over ``MAX_QUERY_BYTES`` (414), a body over
``MAX_BODY_BYTES`` or more than ``MAX_PARAMETERS`` parameters (413), a parameter name over
``MAX_NAME_CHARS`` or a value over ``MAX_VALUE_CHARS`` characters, control characters, and bytes
that are not UTF-8 (431, naming the parameter). No CloudStack command needs more; a request
that does is an attack or a bug, and neither should reach the database or an agent.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from werkzeug.exceptions import HTTPException

from orchestrator.errors import InvalidParameter

from .errors import RequestTooLarge, UriTooLong

MAX_QUERY_BYTES = 32 * 1024
MAX_BODY_BYTES = 256 * 1024
MAX_PARAMETERS = 512
MAX_NAME_CHARS = 128
MAX_VALUE_CHARS = 4096

# C0 controls (tab, newline and carriage return are allowed in values only), DEL, C1 controls,
# surrogates, and U+FFFD, which is what undecodable (non-UTF-8) bytes turn into.
_BAD_IN_VALUE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_UTF8 = "\ufffd"


def shown(text: str, limit: int = 64) -> str:
    """``text`` safe to quote in an error: printable, short."""
    text = "".join(c if c.isprintable() and c != _NOT_UTF8 else "?" for c in text[:limit])
    return text + ("..." if len(text) >= limit else "")


def read_parameters(request) -> list[tuple[str, str]]:
    """The (name, value) pairs of the query string and form body, refusing oversized requests.

    URL-encoded text is decoded here, strictly: werkzeug would keep undecodable bytes as
    ``%FF`` text in a query string and silently drop a whole form body that holds one.
    """
    if len(request.query_string) > MAX_QUERY_BYTES:
        raise UriTooLong(f"Request refused: the query string is {len(request.query_string)} bytes; "
                         f"the limit is {MAX_QUERY_BYTES}")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestTooLarge(f"Request refused: the body is {request.content_length} bytes; "
                              f"the limit is {MAX_BODY_BYTES}")
    try:
        pairs = _urlencoded(request.query_string)
        if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
            pairs += _urlencoded(request.get_data(cache=True))
        elif request.method == "POST" and request.mimetype == "multipart/form-data":
            pairs += list(request.form.items(multi=True))
    except HTTPException as exc:  # werkzeug's own limits (streamed body, form parts)
        raise RequestTooLarge(f"Request refused: {exc.name}; the body limit is {MAX_BODY_BYTES} "
                              f"bytes and {MAX_PARAMETERS} parameters") from None
    if len(pairs) > MAX_PARAMETERS:
        raise RequestTooLarge(f"Request refused: {len(pairs)} parameters; the limit is {MAX_PARAMETERS}")
    return pairs


def _urlencoded(raw: bytes) -> list[tuple[str, str]]:
    parts = [part for part in raw.split(b"&") if part]
    if len(parts) > MAX_PARAMETERS:
        raise RequestTooLarge(f"Request refused: {len(parts)} parameters; the limit is {MAX_PARAMETERS}")
    pairs = []
    for part in parts:
        name, _, value = part.partition(b"=")
        name_text = _decode(name)
        if name_text is None:
            raise InvalidParameter(f"Invalid parameter name "
                                   f"{shown(unquote_to_bytes(name).decode('utf-8', 'replace'))!r}: "
                                   f"it is not valid UTF-8")
        value_text = _decode(value)
        if value_text is None:
            raise InvalidParameter(f"Invalid value for parameter {shown(name_text)}: it is not valid UTF-8")
        pairs.append((name_text, value_text))
    return pairs


def _decode(raw: bytes) -> str | None:
    try:
        if b"%" not in raw and b"+" not in raw:  # nothing to unquote (most names and values)
            return raw.decode("utf-8")
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def check_parameters(pairs: list[tuple[str, str]]) -> None:
    """Refuse names and values no command accepts, naming the first offending parameter."""
    for name, value in pairs:
        if not name or len(name) > MAX_NAME_CHARS or _BAD_IN_NAME.search(name) or _NOT_UTF8 in name:
            raise InvalidParameter(f"Invalid parameter name {shown(name)!r}: a name has 1 to "
                                   f"{MAX_NAME_CHARS} printable UTF-8 characters")
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidParameter(f"Invalid value for parameter {name}: it is {len(value)} characters "
                                   f"long; the limit is {MAX_VALUE_CHARS}")
        if _NOT_UTF8 in value:
            raise InvalidParameter(f"Invalid value for parameter {name}: it is not valid UTF-8")
        if _BAD_IN_VALUE.search(value):
            raise InvalidParameter(f"Invalid value for parameter {name}: control characters are not "
                                   f"allowed")
