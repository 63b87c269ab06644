"""How long the tests wait: deadlines for things that will happen, stretched by one factor.

Every time limit in the suite is a deadline for something eventual (a stage answers, a
write travels through the broker, a job ends, a fuzz run reports), never a measure of
speed: no test fails because a machine is slow, only because a thing did not happen. The
limits are written as what a quiet laptop needs, with margin; whatever waits on one
(`eventually`, a subprocess or HTTP timeout, a loop on `time.monotonic()`, pytest-timeout's
limit per test) waits `scaled(limit)`: the limit times SLOWDOWN.

SLOWDOWN is WORKSHOP_TEST_SLOWDOWN when it is set (a number, at least 1; 1 holds every
limit as written), else DEFAULT_SLOWDOWN: what the suite needs on a 2-core machine with two
busy-loop processes (`python -c "while True: pass"`) running beside it. A slower machine or
a heavier load than that takes a larger factor; it only makes a failing test take longer to
say so.
"""

import os

SLOWDOWN_ENV = "WORKSHOP_TEST_SLOWDOWN"
DEFAULT_SLOWDOWN = 3.0


def slowdown_from(value: str | None) -> float:
    """Return the factor a WORKSHOP_TEST_SLOWDOWN value gives (unset or empty: the default)."""
    if value is None or not value.strip():
        return DEFAULT_SLOWDOWN
    try:
        factor = float(value)
    except ValueError:
        raise ValueError(f"{SLOWDOWN_ENV}={value!r} is not a number") from None
    if not factor >= 1:  # also refuses nan
        raise ValueError(f"{SLOWDOWN_ENV}={value!r}: the factor is at least 1")
    return factor


SLOWDOWN = slowdown_from(os.environ.get(SLOWDOWN_ENV))


def scaled(seconds: float) -> float:
    """Return a limit written for a quiet machine, stretched for this one."""
    return seconds * SLOWDOWN
