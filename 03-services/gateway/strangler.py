"""The strangler fig: while the monolith still runs behind the gateway, each verb goes to it
until `workshop strangler move VERB` has moved the verb to its service.

Only in `workshop up 03-services --strangler` (Procfile.strangler), where STRANGLER_ROUTES
names the routes file (chassis/strangler.py). Unset, as in the stage itself,
every verb goes to its service and nothing here changes a call.

A verb that owns data moves in three steps, so that no write is lost or made twice: the
gateway holds the verb's new calls (they wait, they do not fail), the calls already at the
monolith finish (`to_monolith` counts them: `workshop strangler move` waits for 0), and once
the service has applied every change the monolith published, the verb moves and the held
calls go on, to the service.
"""

import collections
import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from chassis.strangler import has_moved, read_routes, routes_file
from workshop.contract import ApiError

MONOLITH = "monolith"
# A move holds a verb's calls while its last few changes drain, far less than this; it gives
# up (and lets them go on, to the monolith) well before (tooling/strangler.py HOLD_WAIT).
HOLD_SECONDS = 30.0
HOLD_POLL_SECONDS = 0.02

_lock = threading.Lock()
_to_monolith: collections.Counter[str] = collections.Counter()


class Moving(ApiError):
    """A verb's move took longer than a call may wait: try again in a moment."""

    def __init__(self, verb: str) -> None:
        message = f"the {verb} calls are moving to their service: try again in a moment"
        super().__init__(503, "verb_moving", message, {"Retry-After": "1"})


def verb_of(service: str) -> str:
    """Return the verb a service answers: its name, less a version (recommend-v2)."""
    name, _, version = service.rpartition("-v")
    return name if name and version.isdigit() else service


@contextmanager
def routed(service: str) -> Iterator[str]:
    """Give who answers a call meant for `service` while the call runs: the service, or the
    monolith while its verb has not moved (waiting while the verb is being moved)."""
    routes = routes_file()
    if routes is None or service == MONOLITH:
        yield service
        return
    verb, deadline = verb_of(service), time.monotonic() + HOLD_SECONDS
    while True:
        # Counted first, then the file read: a move that starts holding after this read
        # sees the call in the count, and waits for it.
        with _lock:
            _to_monolith[verb] += 1
        said = read_routes(routes)
        if verb not in said.holding:
            break
        _done(verb)
        if time.monotonic() > deadline:
            raise Moving(verb)
        time.sleep(HOLD_POLL_SECONDS)
    if verb in said.moved:
        _done(verb)
        yield service
        return
    try:
        yield MONOLITH
    finally:
        _done(verb)


def routing(call: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the gateway's call(service, ...) so that each goes where `routed` says."""

    @functools.wraps(call)
    def routed_call(service: str, *args: Any, **kwargs: Any) -> Any:
        with routed(service) as answering:
            return call(answering, *args, **kwargs)

    return routed_call


def _done(verb: str) -> None:
    with _lock:
        _to_monolith[verb] -= 1


def asks_monolith_too(service: str, path: str) -> bool:
    """Tell whether a 404 from a moved service should be asked of the monolith as well: a
    job the monolith ran before ingest moved is still the monolith's to report."""
    return (
        has_moved("ingest")
        and routes_file() is not None
        and verb_of(service) == "ingest"
        and "/jobs/" in path
    )


def state() -> dict[str, Any]:
    """Say, on the gateway's /readyz, what has moved, what is moving, and the calls now at
    the monolith per verb (a move waits for its verb's to finish)."""
    routes = routes_file()
    said = read_routes(routes) if routes else None
    with _lock:
        in_flight = {verb: count for verb, count in _to_monolith.items() if count}
    return {
        "ok": True,
        "moved": sorted(said.moved) if said else [],
        "holding": sorted(said.holding) if said else [],
        "to_monolith": in_flight,
    }
