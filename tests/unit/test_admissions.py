"""Which instances a gateway sends calls to (03 and 04 share the rule): those whose /readyz
said their start-up data is in, whatever else is down."""

import time

import pytest

from workshop.platform.instances import Admissions, health, readiness, takes_calls


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
        # 04's ingest without its worker: jobs wait, but it still takes and reports them.
        (503, readyz(worker={"ok": False, "error": "TimeoutError"}), True),
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


def listed(status: str) -> dict:
    return {"address": "http://127.0.0.1:8200", "status": status}


def test_a_service_that_is_not_ready_says_what_fails():
    """The gateway's /readyz names the checks that fail, from every instance's answer."""
    worker_down = readyz(mongodb={"ok": True}, worker={"ok": False, "error": "TimeoutError"},
                         backlog={"ok": True, "waiting": 3})  # fmt: skip
    broker_down = readyz(broker={"ok": False}, backlog={"ok": False, "error": "OSError"})
    state = readiness([(listed("not ready"), worker_down), (listed("not ready"), broker_down)])
    assert state["ok"] is False and state["backlog"] == 3
    assert state["failing"] == ["backlog", "broker", "worker"]
    assert state["instances"] == [listed("not ready"), listed("not ready")]
    fine = readiness([(listed("ready"), readyz(mongodb={"ok": True})), (listed("unreachable"), {})])
    assert fine["ok"] is True and "failing" not in fine
