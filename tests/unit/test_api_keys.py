"""API keys never start with "-": a key is passed on command lines (``motion keys disable KEY``),
where a leading "-" reads as an option. One key in 64 drawn by ``token_urlsafe`` does."""
from orchestrator import accounts


def test_a_key_drawn_with_a_leading_dash_is_drawn_again(monkeypatch):
    drawn = iter(["-starts-with-a-dash", "_fine-key"])
    monkeypatch.setattr(accounts.secrets, "token_urlsafe", lambda n: next(drawn))
    assert accounts.new_key() == "_fine-key"


def test_keys_are_long_random_and_never_start_with_a_dash():
    keys = {accounts.new_key() for _ in range(2000)}
    assert len(keys) == 2000
    assert all(len(k) >= 80 and not k.startswith("-") for k in keys)
