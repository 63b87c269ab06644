"""The gateway's routing in a strangler fig: a verb goes to the monolith until it moves;
while it moves, its calls wait (they do not fail) and the move sees the calls still at the
monolith; outside a migration nothing changes."""

import threading
import time

import pytest

from tooling.stages import get_stage
from tooling.strangler import Routes, read_routes, write_routes
from tooling.strangler import verb_of as process_verb

ROUTES_ENV = "STRANGLER_ROUTES"  # what Procfile.strangler sets, chassis/strangler.py reads


@pytest.fixture
def strangler():
    return get_stage("03-services").load("gateway.strangler")


@pytest.fixture
def routes(tmp_path, monkeypatch):
    path = tmp_path / "strangler.json"
    monkeypatch.setenv(ROUTES_ENV, str(path))
    return path


def test_outside_a_migration_every_call_goes_to_its_service(strangler, monkeypatch):
    monkeypatch.delenv(ROUTES_ENV, raising=False)
    with strangler.routed("tag") as answering:
        assert answering == "tag"
    assert strangler.asks_monolith_too("ingest", "/api/jobs/abc") is False


def test_a_verb_goes_to_the_monolith_until_it_moves(strangler, routes):
    with strangler.routed("recommend-v2") as answering:
        assert answering == "monolith", "no file yet: nothing has moved"
    write_routes(routes, Routes(moved=frozenset({"recommend"})))
    with strangler.routed("recommend-v2") as answering:
        assert answering == "recommend-v2"
    with strangler.routed("search") as answering:
        assert answering == "monolith"
    assert read_routes(routes) == Routes(moved=frozenset({"recommend"}))


def test_a_moving_verb_waits_and_the_move_sees_the_calls_at_the_monolith(strangler, routes):
    entered, leave = threading.Event(), threading.Event()
    answered: list[str] = []

    def call() -> None:
        with strangler.routed("tag") as answering:
            answered.append(answering)
            entered.set()
            leave.wait(10)

    at_monolith = threading.Thread(target=call)
    at_monolith.start()
    assert entered.wait(10)
    assert strangler.state()["to_monolith"] == {"tag": 1}, "a move waits for this one"
    write_routes(routes, Routes(holding=frozenset({"tag"})))
    entered.clear()
    held = threading.Thread(target=call)
    held.start()
    time.sleep(0.3)
    assert not entered.is_set(), "a new call waits while its verb moves"
    leave.set()
    at_monolith.join(10)
    assert strangler.state()["to_monolith"] == {}
    write_routes(routes, Routes(moved=frozenset({"tag"})))
    assert entered.wait(10)
    held.join(10)
    assert answered == ["monolith", "tag"]


def test_a_call_held_too_long_is_told_to_try_again(strangler, routes, monkeypatch):
    monkeypatch.setattr(strangler, "HOLD_SECONDS", 0.2)
    write_routes(routes, Routes(holding=frozenset({"users"})))
    with pytest.raises(strangler.Moving) as refused, strangler.routed("users"):
        pass
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    assert strangler.state()["to_monolith"] == {}


def test_verbs_are_named_alike_by_the_gateway_and_the_command(strangler):
    assert strangler.verb_of("recommend-v1") == process_verb("recommend_v1") == "recommend"
    assert strangler.verb_of("search") == process_verb("search") == "search"
    assert strangler.verb_of("monolith") == "monolith"
