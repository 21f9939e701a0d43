"""The fast paths of parameter decoding and signing encoding give what the general code gives."""
from urllib.parse import quote, unquote_to_bytes

from hypothesis import given, strategies as st

from api.limits import _decode
from api.signing import java_encode


@given(st.text())
def test_java_encode_is_quote_with_star_kept_and_tilde_encoded(value):
    assert java_encode(value) == quote(value, safe="*").replace("~", "%7E")


@given(st.binary(max_size=40) | st.text(alphabet="abc%+2F0-_.~", max_size=20).map(str.encode))
def test_decode_is_unquote_with_plus_as_space_or_none_for_bad_utf8(raw):
    try:
        expected = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        expected = None
    assert _decode(raw) == expected
