"""Which instances a gateway sends calls to (03 and 04 share the rule): those whose /readyz
said their start-up data is in, whatever else is down."""

import time

import pytest

from workshop.instances import Admissions, health, takes_calls


def readyz(**dependencies: dict) -> dict:
    return {"status": "degraded", "dependencies": dependencies}


@pytest.mark.parametrize(
    ("status", "body", "takes"),
    [
        (200, {"status": "ready", "dependencies": {}}, True),
        (503, readyz(bootstrap={"ok": False, "replayed": 500, "through": None}), False),
        # A broker outage makes every service's /readyz 503: its reads are still right.
        (503, readyz(broker={"ok": False}, bootstrap={"ok": True}), True),
        (503, readyz(broker={"ok": False}), True),  # users, ingest: nothing to load at start
        (503, readyz(broker={"ok": False}, bootstrap={"ok": False}), False),
        (503, None, False),  # not an instance's readiness (a proxy's page)
        (502, {"error": {"code": "x", "message": "y"}}, False),
        (None, None, False),  # no answer
    ],
)
def test_an_instance_takes_calls_once_its_start_up_data_is_in(status, body, takes):
    assert takes_calls(health(status), body) is takes


def test_an_instance_still_loading_is_asked_again_only_after_a_while(monkeypatch):
    admissions, now = Admissions(), [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    address = "http://127.0.0.1:8300"
    assert admissions.due(address) and not admissions.admitted(address)
    admissions.record(address, False)
    assert admissions.loading(address) and not admissions.due(address)
    now[0] += Admissions.RECHECK_SECONDS
    assert admissions.due(address) and not admissions.loading(address)
    admissions.record(address, True)
    assert admissions.admitted(address) and admissions.served(address)


def test_an_instance_nobody_answered_at_is_asked_again_and_known_to_have_served():
    admissions, address = Admissions(), "http://127.0.0.1:8300"
    admissions.record(address, True)
    admissions.forget(address)
    assert not admissions.admitted(address) and admissions.due(address)
    assert admissions.served(address)  # so no answer now means down, not starting
