"""`workshop strangler`: move a verb from the monolith to its service while the stage runs.

The stage runs as `workshop up 03-services --strangler` (its Procfile.strangler): the gateway
in front, the monolith behind it answering every verb, and every service beside it, filling
its store from the monolith's outbox through sync. Moving a verb rewrites the stage's routes
file, which the gateway reads before each call (03-services/chassis/strangler.py).

The verbs that only read (search, recommend) move once their service has caught up. A verb
that owns data (tag, users, ingest) moves with its data: its calls are held at the gateway,
the ones already at the monolith finish, the service applies the last changes the monolith
published, and only then does the verb move, and its owner with it. Readers move first:
once an owner has moved, the monolith no longer sees its writes, so its answers to the
readers would fall behind.
"""

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tooling.runner import running_stages

MODE = "strangler"
# In the stage's data folder (Procfile.strangler names it): the moves are kept with the
# data they moved, for as long as it is kept (`--fresh` forgets both).
ROUTES_FILE = "strangler.json"
MONOLITH = "monolith"
FRONT_DOOR = "web"
# Processes that are no verb of their own: the front door, the old system, the distributor.
NOT_VERBS = (FRONT_DOOR, MONOLITH, "sync")
READERS = ("search", "recommend")  # they only read copies: they move first, and back freely
CATCH_UP_SECONDS = 60.0
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Routes:
    """What the routes file says: the verbs moved, and the ones moving (calls held)."""

    moved: frozenset[str] = frozenset()
    holding: frozenset[str] = frozenset()


def read_routes(routes: Path) -> Routes:
    """Return what the routes file says (nothing moved while it does not exist)."""
    if not routes.exists():
        return Routes()
    said = json.loads(routes.read_text(encoding="utf-8"))
    return Routes(frozenset(said["moved"]), frozenset(said["holding"]))


def write_routes(routes: Path, said: Routes) -> None:
    """Write the routes whole, then rename them into place: a reader never sees half."""
    written = routes.with_name(routes.name + ".tmp")
    body = {"moved": sorted(said.moved), "holding": sorted(said.holding)}
    written.write_text(json.dumps(body), encoding="utf-8")
    os.replace(written, routes)


class StranglerError(RuntimeError):
    """A move that cannot be made now; the routes are as they were."""


def verb_of(process: str) -> str:
    """Return the verb a process answers: its name, less a version (recommend_v2)."""
    name, _, version = process.rpartition("_v")
    return name if name and version.isdigit() else process


@dataclass(frozen=True)
class Migration:
    """A stage running as a strangler fig: its processes' ports and its routes file."""

    ports: dict[str, int]
    routes: Path

    @classmethod
    def running(cls, port: int | None = None) -> "Migration":
        """Return the newest stage `workshop up --strangler` runs (on `port`, if given)."""
        for record in running_stages():
            if record.get("mode") == MODE and port in (None, record["port"]):
                return cls(record["ports"], Path(record["data_dir"]) / ROUTES_FILE)
        where = f" on port {port}" if port else ""
        raise StranglerError(f"no stage runs as a strangler fig{where}: start one with "
                             "`workshop up 03-services --strangler`")  # fmt: skip

    def verbs(self) -> dict[str, list[str]]:
        """Return each verb, with the processes that answer it."""
        verbs: dict[str, list[str]] = {}
        for process in self.ports:
            if process not in NOT_VERBS:
                verbs.setdefault(verb_of(process), []).append(process)
        return verbs

    def now(self) -> Routes:
        """Return the routes as the gateway reads them now."""
        return read_routes(self.routes)

    def status(self) -> dict[str, str]:
        """Return who answers each verb now: its service, or the monolith."""
        said = self.now()
        return {
            verb: "moving" if verb in said.holding else verb if verb in said.moved else MONOLITH
            for verb in self.verbs()
        }

    def move(self, verb: str, say: Callable[[str], None], within: float = CATCH_UP_SECONDS) -> None:
        """Send the gateway's calls for `verb` to its service, once the service has every
        change the monolith made; or raise StranglerError, the routes as they were."""
        processes = self._processes(verb)
        said = self.now()
        if verb in said.moved:
            say(f"{verb}: already answered by its service")
            return
        owner = verb not in READERS
        if owner and not set(READERS) <= said.moved:
            raise StranglerError(f"move {' and '.join(READERS)} first: once {verb} has moved, "
                                 "the monolith no longer sees its writes, and its own answers "
                                 "to them would fall behind")  # fmt: skip
        deadline = time.monotonic() + within
        if owner:
            # New calls wait at the gateway; the ones already at the monolith finish.
            write_routes(self.routes, Routes(said.moved, said.holding | {verb}))
            say(f"{verb}: holding its calls at the gateway while its data catches up")
        try:
            if owner:
                self._wait(deadline, f"{verb}'s calls at the monolith to finish",
                           lambda: self._to_monolith(verb))  # fmt: skip
            self._wait(deadline, f"{', '.join(processes)} to apply the monolith's changes",
                       lambda: self._behind([MONOLITH, "sync", *processes]))  # fmt: skip
        except StranglerError:
            write_routes(self.routes, Routes(said.moved, said.holding - {verb}))
            raise
        write_routes(self.routes, Routes(said.moved | {verb}, said.holding - {verb}))
        to = ", ".join(processes)
        say(f"{verb}: the gateway now sends it to {to} (was: the monolith)"
            + (f"; {to} owns its data and publishes its changes" if owner else ""))  # fmt: skip

    def back(self, verb: str, say: Callable[[str], None]) -> None:
        """Send the gateway's calls for `verb` to the monolith again: a reader, while the
        monolith still owns every write (so its answers are as new as any copy's)."""
        self._processes(verb)
        said = self.now()
        if verb not in said.moved:
            say(f"{verb}: already answered by the monolith")
            return
        owners = sorted(said.moved - set(READERS))
        if owners:
            own = "owns its" if len(owners) == 1 else "own their"
            raise StranglerError(f"{', '.join(owners)} {own} data now: the monolith no longer "
                                 f"sees those writes, so {verb} cannot go back to it "
                                 "(docs/strangler-fig.md: the way back)")  # fmt: skip
        write_routes(self.routes, Routes(said.moved - {verb}, said.holding))
        say(f"{verb}: the gateway sends it to the monolith again")

    def _processes(self, verb: str) -> list[str]:
        if verb not in self.verbs():
            raise StranglerError(f"no verb {verb!r} to move (verbs: {', '.join(self.verbs())})")
        return self.verbs()[verb]

    def _wait(self, deadline: float, what: str, left: Callable[[], dict[str, Any]]) -> None:
        """Wait until nothing is left, or raise StranglerError at the deadline."""
        while True:
            found = left()
            if not found:
                return
            if time.monotonic() > deadline:
                behind = ", ".join(f"{name}: {n}" for name, n in found.items())
                raise StranglerError(f"gave up waiting for {what} ({behind}); "
                                     "nothing moved: try again")  # fmt: skip
            time.sleep(POLL_SECONDS)

    def _to_monolith(self, verb: str) -> dict[str, Any]:
        """Return the verb's calls the gateway has at the monolith now, if any."""
        state = self._readyz(FRONT_DOOR).get("strangler", {})
        count = state.get("to_monolith", {}).get(verb, 0) if state else "not answering"
        return {"gateway": count} if count else {}

    def _behind(self, processes: list[str]) -> dict[str, Any]:
        """Return what waits at each process, in the order changes travel (from the
        monolith through sync to the service: a change moving on between two looks is
        seen at the second); empty when nothing waits anywhere."""
        behind = {}
        for process in processes:
            checks = self._readyz(process)
            backlog, bootstrap = checks.get("backlog"), checks.get("bootstrap", {"ok": True})
            waiting = backlog.get("waiting") if isinstance(backlog, dict) else None
            if not bootstrap.get("ok"):
                behind[process] = "loading its start-up data"
            elif waiting != 0:
                behind[process] = "not answering" if waiting is None else waiting
        return behind

    def _readyz(self, process: str) -> dict[str, Any]:
        """Return a process's /readyz checks (empty if it does not answer)."""
        try:
            answer = requests.get(f"http://127.0.0.1:{self.ports[process]}/readyz", timeout=10)
            return answer.json().get("dependencies", {})
        except (requests.RequestException, ValueError):
            return {}
