"""Request signing as CloudStack checks it, against the real ``cs`` client's signatures."""
from datetime import datetime, timezone

import cs.client

from api import signing


def cs_signed(params: dict, secret: str) -> dict:
    """Sign ``params`` exactly as the cs client does before sending them."""
    client = cs.client.CloudStack(endpoint="http://x/client/api", key="k", secret=secret)
    data = dict(params)
    client._sign(data)
    return data


def test_a_request_signed_by_the_cs_client_verifies():
    data = cs_signed({"command": "listVolumes", "apiKey": "AbC", "response": "json",
                      "signatureVersion": "3", "expires": "2030-01-01T00:00:00+0000",
                      "keyword": "a b*c~d/é"}, "s3cr3t")
    signature = data.pop("signature")
    assert signing.signature_matches(list(data.items()), "s3cr3t", signature)


def test_map_parameters_with_brackets_are_signed_by_their_raw_names():
    data = cs_signed({"command": "migrateVirtualMachineWithVolume", "apiKey": "k",
                      "migrateto[0].volume": "v-1", "migrateto[0].pool": "p-1"}, "sec")
    signature = data.pop("signature")
    assert signing.signature_matches(list(data.items()), "sec", signature)


def test_a_wrong_secret_or_a_changed_value_does_not_verify():
    data = cs_signed({"command": "migrateVolume", "apiKey": "k", "volumeid": "a"}, "right")
    signature = data.pop("signature")
    assert not signing.signature_matches(list(data.items()), "wrong", signature)
    data["volumeid"] = "b"
    assert not signing.signature_matches(list(data.items()), "right", signature)


def test_a_client_that_sorts_lower_cased_names_is_accepted_too():
    pairs = [("command", "listZones"), ("apiKey", "K"), ("Zeta", "1"), ("alpha", "2")]
    lowered = sorted(pairs, key=lambda kv: kv[0].lower())
    text = "&".join(f"{k}={signing.python_encode(v)}" for k, v in lowered).lower()
    assert signing.signature_matches(pairs, "s", signing.sign(text, "s"))


def test_our_own_signer_produces_what_cloudstack_verifies():
    pairs = [("command", "listZones"), ("apiKey", "K"), ("response", "json")]
    assert signing.signature_matches(pairs, "s", signing.sign_pairs(pairs, "s"))


def test_expires_parses_cloudstack_dates_and_rejects_garbage():
    assert signing.parse_expires("2026-11-25T19:00:00+0000") == datetime(2026, 11, 25, 19, tzinfo=timezone.utc)
    assert signing.parse_expires("2026-11-25T19:00:00 0000") is not None  # '+' decoded as space
    assert signing.parse_expires("tomorrow") is None
