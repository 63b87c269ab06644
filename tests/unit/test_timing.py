"""Time limits in the tests are deadlines stretched by one factor (tests/timing.py), pytest-
timeout's among them (tests/conftest.py)."""

import time

import pytest

from tests import timing
from tests.acceptance.stage import eventually


def test_the_factor_comes_from_the_variable_or_the_default():
    assert timing.slowdown_from(None) == timing.DEFAULT_SLOWDOWN
    assert timing.slowdown_from(" ") == timing.DEFAULT_SLOWDOWN
    assert timing.slowdown_from("1") == 1.0
    assert timing.slowdown_from("4.5") == 4.5
    for wrong in ("fast", "0.5", "0", "-2", "nan"):
        with pytest.raises(ValueError, match="WORKSHOP_TEST_SLOWDOWN"):
            timing.slowdown_from(wrong)


def test_the_default_allows_for_a_loaded_machine():
    assert timing.DEFAULT_SLOWDOWN >= 2  # two busy cores beside the suite, at the least


def test_a_limit_is_stretched_by_the_factor(monkeypatch):
    monkeypatch.setattr(timing, "SLOWDOWN", 3.0)
    assert timing.scaled(10) == 30.0


def test_eventually_waits_the_stretched_limit(monkeypatch):
    monkeypatch.setattr(timing, "SLOWDOWN", 4.0)
    started = time.monotonic()
    assert eventually(lambda: time.monotonic() - started, lambda t: t >= 0.3, within=0.1) >= 0.3
    assert not eventually(lambda: False, bool, within=0.05)
    assert time.monotonic() - started >= 0.3 + 0.2  # 0.05 s stretched 4 times


@pytest.mark.timeout(7)
def test_a_tests_own_time_limit_is_stretched(request):
    assert request.node.get_closest_marker("timeout").args[0] == 7 * timing.SLOWDOWN


def test_the_configured_time_limit_is_stretched(request):
    configured = request.config.getini("timeout")
    assert float(configured) > 0
    mark = request.node.get_closest_marker("timeout")
    assert mark.args[0] == float(configured) * timing.SLOWDOWN
