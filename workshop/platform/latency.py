"""The latency knob, a teaching and test tool: WORKSHOP_LATENCY_MS="search=50,recommend=50"
makes the named services wait that many milliseconds before each answer.

Off by default. A name matches the service of that name and its versions ("recommend"
matches recommend-v1 and recommend-v2); the most specific name wins. A setting that does
not parse stops the service at start, naming the bad entry. A Flask service waits here, in
a blocked worker thread; the async stage's chassis waits with an awaited sleep instead.
"""

import functools
import math
import re
import time

from flask import Flask

from workshop import config

SETTING = "WORKSHOP_LATENCY_MS"
# A delay is a teaching aid, not an outage: a minute is more than any lesson needs.
MAX_MS = 60_000
ENTRY = re.compile(r"(?P<name>[a-z0-9][a-z0-9-]*)=(?P<ms>\d+(\.\d+)?)")


def parse(setting: str) -> dict[str, float]:
    """Return the delay in seconds per service name; raise ValueError naming a bad entry."""
    delays: dict[str, float] = {}
    if not setting.strip():
        return delays
    for entry in setting.split(","):
        found = ENTRY.fullmatch(entry.strip())
        ms = float(found["ms"]) if found else math.nan
        if not found or not 0 <= ms <= MAX_MS:
            raise ValueError(
                f"{SETTING}: {entry.strip()!r} is not service=milliseconds "
                f'(0 to {MAX_MS}), e.g. {SETTING}="search=50,recommend=50"'
            )
        delays[found["name"]] = ms / 1000
    return delays


def delay_for(service: str, setting: str | None = None) -> float:
    """Return how long a service waits before each answer, in seconds (0: the knob is off)."""
    delays = parse(config.env(SETTING, "") if setting is None else setting)
    matching = [name for name in delays if service == name or service.startswith(name + "-")]
    return delays[max(matching, key=len)] if matching else 0.0


def delay_answers(app: Flask, service: str) -> None:
    """Make a Flask service wait before each answer as WORKSHOP_LATENCY_MS says."""
    seconds = delay_for(service)
    if seconds:
        # The request sleeps in its worker thread: the thread serves nobody else meanwhile.
        app.before_request(functools.partial(time.sleep, seconds))
