"""The latency knob: WORKSHOP_LATENCY_MS delays the named services' answers, by a blocked
thread on Flask and an awaited sleep on Quart; off by default, refused at start when wrong."""

import asyncio
import time

import pytest
from flask import Flask

from tooling.stages import Stage
from workshop import web
from workshop.config import ROOT
from workshop.platform import latency

ASYNC_STAGE = Stage("04-async", ROOT / "04-async")
DELAY_MS = 200


def test_the_knob_is_off_by_default(monkeypatch):
    monkeypatch.delenv(latency.SETTING, raising=False)
    assert latency.delay_for("search") == 0


def test_a_name_matches_the_service_and_its_versions():
    setting = "search=50, recommend=120,tag=0"
    assert latency.delay_for("search", setting) == pytest.approx(0.05)
    assert latency.delay_for("recommend-v1", setting) == pytest.approx(0.12)
    assert latency.delay_for("recommend-v2", setting) == pytest.approx(0.12)
    assert latency.delay_for("tag", setting) == 0
    assert latency.delay_for("users", setting) == 0
    assert latency.delay_for("searcher", setting) == 0  # a name, not a prefix of letters


def test_the_most_specific_name_wins():
    setting = "recommend=50,recommend-v2=300"
    assert latency.delay_for("recommend-v2", setting) == pytest.approx(0.3)
    assert latency.delay_for("recommend-v1", setting) == pytest.approx(0.05)


@pytest.mark.parametrize(
    "setting",
    [
        "search",
        "search=",
        "search=fast",
        "=50",
        "search=-5",
        "search=50ms",
        "Search!=5",
        "search=50,,tag=5",
        "search=99999999",
        "search=nan",
    ],  # fmt: skip
)
def test_a_bad_setting_is_a_clear_error(setting):
    with pytest.raises(ValueError, match=latency.SETTING):
        latency.delay_for("search", setting)


def flask_app(service: str) -> Flask:
    app = web.create_flask(__name__, {"TESTING": True})
    app.add_url_rule("/ping", "ping", lambda: "pong")
    latency.delay_answers(app, service)
    return app


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def test_the_knob_delays_a_flask_service_and_no_other(monkeypatch):
    monkeypatch.setenv(latency.SETTING, f"search={DELAY_MS}")
    delayed, other = flask_app("search").test_client(), flask_app("tag").test_client()
    assert delayed.get("/ping").text == "pong"
    assert timed(lambda: delayed.get("/ping")) >= DELAY_MS / 1000
    assert timed(lambda: other.get("/ping")) < DELAY_MS / 1000 / 4


def test_a_bad_setting_stops_a_flask_service_at_start(monkeypatch):
    monkeypatch.setenv(latency.SETTING, "search=slow")
    with pytest.raises(ValueError, match="search=slow"):
        flask_app("search")


def quart_app(service: str):
    chassis_web = ASYNC_STAGE.load("chassis.web")
    app = chassis_web.create_quart(__name__, {"TESTING": True})

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    chassis_web.delay_answers(app, service)
    return app


async def timed_async(calls) -> float:
    started = time.perf_counter()
    await asyncio.gather(*calls)
    return time.perf_counter() - started


def test_the_knob_delays_a_quart_service_without_blocking_its_loop(monkeypatch):
    monkeypatch.setenv(latency.SETTING, f"recommend={DELAY_MS}")

    async def scenario() -> tuple[float, float, float]:
        delayed = quart_app("recommend-v2").test_client()
        other = quart_app("search").test_client()
        assert await (await delayed.get("/ping")).get_data(as_text=True) == "pong"
        one = await timed_async([delayed.get("/ping")])
        # Ten answers at once take about one delay: the sleep is awaited, the loop serves on.
        ten = await timed_async([delayed.get("/ping") for _ in range(10)])
        undelayed = await timed_async([other.get("/ping")])
        return one, ten, undelayed

    one, ten, undelayed = asyncio.run(scenario())
    assert one >= DELAY_MS / 1000
    assert ten < 3 * one
    assert undelayed < DELAY_MS / 1000 / 4
