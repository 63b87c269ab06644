"""The login limits' parts that no stage shows on loopback: the client behind a proxy."""

import pytest

from workshop import logins


@pytest.mark.parametrize(
    ("hops", "forwarded", "client"),
    [
        ("", "203.0.113.9", "10.0.0.2"),  # no proxy trusted: what a client writes is ignored
        ("1", "203.0.113.9", "203.0.113.9"),  # nginx wrote the address it got the call from
        ("1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client's own entry is not trusted
        ("2", "6.6.6.6, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
        ("1", "", "10.0.0.2"),
    ],
)
def test_the_client_is_the_peer_or_what_trusted_proxies_say(monkeypatch, hops, forwarded, client):
    monkeypatch.setenv("WORKSHOP_PROXY_HOPS", hops)
    assert logins.client_address("10.0.0.2", forwarded) == client


def test_failures_are_counted_per_user_and_per_client():
    limiter = logins.LoginLimiter("memory://")
    for number in range(logins.PER_USER.amount):
        assert limiter.retry_after("ada", f"10.0.0.{number}") == 0
        limiter.failed("ada", f"10.0.0.{number}")
    assert 0 < limiter.retry_after("ada", "10.9.9.9") <= 300
    assert limiter.retry_after("bob", "10.0.0.1") == 0


def test_a_store_that_is_down_lets_logins_through():
    limiter = logins.LoginLimiter("redis://127.0.0.1:1/0")  # nothing listens there
    limiter.failed("ada", "10.0.0.1")
    assert limiter.retry_after("ada", "10.0.0.1") == 0
