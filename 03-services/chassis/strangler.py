"""The strangler fig's routes file: which verbs have moved from the monolith to their
services, and which are moving (their calls held) right now.

Procfile.strangler names the file in STRANGLER_ROUTES for the processes that read it, and
`workshop strangler move VERB` rewrites it while the stage runs. The gateway reads it before
each call (gateway/strangler.py), and each owner's relay before each round (`owned_by`):
the monolith publishes a verb's data until the verb moves, then the verb's service does.
No file: nothing has moved yet. No variable: no migration, every verb is its service's.
"""

import functools
import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from workshop import config

if TYPE_CHECKING:
    from chassis.messaging.outbox import Source

ROUTES_ENV = "STRANGLER_ROUTES"


@dataclass(frozen=True)
class Routes:
    """The verbs moved to their services, and the ones being moved (calls wait). Written
    by `workshop strangler` (tooling/strangler.py, which imports no stage's code)."""

    moved: frozenset[str] = frozenset()
    holding: frozenset[str] = frozenset()


_lock = threading.Lock()
_last: dict[str, object] = {"stamp": None, "routes": Routes()}


def read_routes(routes: Path) -> Routes:
    """Return what the routes file says (a stat per call; the file is read when it changed)."""
    try:
        stat = routes.stat()
    except FileNotFoundError:
        return Routes()
    stamp = (str(routes), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    with _lock:
        if _last["stamp"] != stamp:
            said = json.loads(routes.read_text(encoding="utf-8"))
            found = Routes(frozenset(said["moved"]), frozenset(said.get("holding", ())))
            _last.update(stamp=stamp, routes=found)
        return _last["routes"]  # type: ignore[return-value]


def routes_file() -> Path | None:
    """Return the routes file of the migration this process runs in, or None (none)."""
    named = config.env(ROUTES_ENV)
    return Path(named) if named else None


def has_moved(verb: str) -> bool:
    """Tell whether a verb has moved to its service (always, outside a migration)."""
    routes = routes_file()
    return routes is None or verb in read_routes(routes).moved


class Migrating(Protocol):
    """What a migration asks of a service (chassis.service.Service, which imports this)."""

    name: str
    subscribes: dict[str, Any]
    follows: dict[str, Any]
    old_system: bool


ServiceT = TypeVar("ServiceT", bound=Migrating)


def following(service: ServiceT) -> ServiceT:
    """Return a service that, in a migration, also takes what it `follows` of the monolith's
    data (a verb's owner-to-be keeps it until the verb moves); else the service as it is."""
    if routes_file() and service.follows:
        # A copy (Service is a dataclass) that subscribes to the monolith's types too.
        return replace(service, subscribes={**service.subscribes, **service.follows})
    return service


def owned_by(service: Migrating, sources: list["Source"]) -> list["Source"]:
    """Return a service's outbox sources, which in a migration publish only once the verb
    has moved here (the monolith owns everything until then)."""
    if not routes_file() or service.old_system:
        return sources
    moved = functools.partial(has_moved, service.name)
    return [replace(source, active=moved) for source in sources]
