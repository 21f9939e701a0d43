"""Password hashes: salted, slow, self-describing, and checked in constant time."""
import pytest

from orchestrator import passwords


@pytest.fixture(autouse=True)
def cheap(monkeypatch):
    monkeypatch.setattr(passwords, "COST_N", 2 ** 8)  # the format, not the cost, is tested here


def test_the_same_password_hashes_differently_each_time_and_verifies_both_times():
    first, second = passwords.hash_password("pw"), passwords.hash_password("pw")
    assert first != second and first.startswith("scrypt$256$8$1$")
    assert passwords.verify("pw", first) and passwords.verify("pw", second)


def test_a_wrong_password_or_an_unreadable_hash_does_not_verify():
    stored = passwords.hash_password("pw")
    assert not passwords.verify("pW", stored)
    assert not passwords.verify("pw", None)
    assert not passwords.verify("pw", "plain-text")
    assert not passwords.verify("pw", "scrypt$3$8$1$AAAA$AAAA")  # n must be a power of two
    assert not passwords.verify("", stored)


def test_a_hash_keeps_working_after_the_cost_is_raised(monkeypatch):
    stored = passwords.hash_password("pw")
    monkeypatch.setattr(passwords, "COST_N", 2 ** 10)
    assert passwords.verify("pw", stored)


def test_empty_and_absurdly_long_passwords_are_refused():
    for bad in ("", "x" * (passwords.MAX_PASSWORD_CHARS + 1)):
        with pytest.raises(ValueError):
            passwords.hash_password(bad)
