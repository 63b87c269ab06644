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

import contextlib
import fcntl
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
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
# What must have moved before a verb: the monolith takes no changes back, so nothing it
# still answers may read what a moved owner writes (its tags read its posts).
MOVED_BEFORE = {"tag": READERS, "users": READERS, "ingest": (*READERS, "tag")}
CATCH_UP_SECONDS = 60.0
# How long an owner's calls may be held while its last changes drain: within the gateway's
# own limit for a held call (gateway/strangler.py HOLD_SECONDS, 30 s), so none fails.
HOLD_WAIT = 20.0
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Routes:
    """What the routes file says: the verbs moved, and the ones moving (calls held). This
    writes the file; stage 03 reads it (03-services/chassis/strangler.py): no tool imports a
    stage's code, so the two sides share only the file's two lists."""

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
    """Return the verb a process answers: its name, less a version (recommend_v2; the
    gateway names it as a host, recommend-v2: gateway/strangler.py verb_of)."""
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

    @contextlib.contextmanager
    def _alone(self) -> Iterator[Routes]:
        """Hold the routes for one move at a time (two terminals would undo each other's),
        and give them as they are once held."""
        with self.routes.with_name(self.routes.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self.now()

    def move(self, verb: str, say: Callable[[str], None], within: float = CATCH_UP_SECONDS) -> None:
        """Send the gateway's calls for `verb` to its service, once the service has every
        change the monolith made; or raise StranglerError, the routes as they were."""
        processes = self._processes(verb)
        with self._alone() as said:
            if verb in said.moved:
                say(f"{verb}: already answered by its service")
                return
            first = [needed for needed in MOVED_BEFORE.get(verb, ()) if needed not in said.moved]
            if first:
                raise StranglerError(f"move {' and '.join(first)} first: once {verb} has "
                                     "moved, the monolith no longer sees its writes, and its "
                                     "own answers to them would fall behind")  # fmt: skip
            catching_up = f"{', '.join(processes)} to apply the monolith's changes"
            behind = functools.partial(self._behind, [MONOLITH, "sync", *processes])
            # Caught up once, with every call flowing: what is left to drain is then small.
            say(f"{verb}: waiting for {catching_up}")
            self._wait(time.monotonic() + within, catching_up, behind)
            if verb in READERS:
                write_routes(self.routes, Routes(said.moved | {verb}, said.holding))
                say(f"{verb}: the gateway now sends it to {', '.join(processes)} "
                    "(was: the monolith)")  # fmt: skip
                return
            self._move_owner(verb, processes, said, catching_up, behind, say)

    def _move_owner(
        self,
        verb: str,
        processes: list[str],
        said: Routes,
        catching_up: str,
        behind: Callable[[], dict[str, Any]],
        say: Callable[[str], None],
    ) -> None:
        """Hold the verb's calls, let the monolith finish its own, drain its last changes into
        the service, then switch: the verb, and the ownership of its data. However this
        ends short of the switch (a deadline, Ctrl-C), the held calls go on to the monolith."""
        write_routes(self.routes, Routes(said.moved, said.holding | {verb}))
        say(f"{verb}: holding its calls at the gateway while its last changes drain")
        switched = False
        try:
            deadline = time.monotonic() + HOLD_WAIT
            self._wait(deadline, f"{verb}'s calls at the monolith to finish",
                       functools.partial(self._under_way, verb))  # fmt: skip
            self._wait(deadline, catching_up, behind)
            write_routes(self.routes, Routes(said.moved | {verb}, said.holding))
            switched = True
        finally:
            if not switched:
                write_routes(self.routes, said)
        to = ", ".join(processes)
        say(f"{verb}: the gateway now sends it to {to} (was: the monolith); {to} owns its "
            "data and publishes its changes")  # fmt: skip

    def back(self, verb: str, say: Callable[[str], None]) -> None:
        """Send the gateway's calls for `verb` to the monolith again: a reader, while the
        monolith still owns every write (so its answers are as new as any copy's)."""
        self._processes(verb)
        with self._alone() as said:
            if verb not in said.moved:
                say(f"{verb}: already answered by the monolith")
                return
            owners = sorted(said.moved - set(READERS))
            if owners:
                own = "owns its" if len(owners) == 1 else "own their"
                raise StranglerError(f"{', '.join(owners)} {own} data now: the monolith no "
                                     f"longer sees those writes, so {verb} cannot go back to "
                                     "it (docs/strangler-fig.md: the way back)")  # fmt: skip
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

    def _under_way(self, verb: str) -> dict[str, Any]:
        """Return the verb's calls still under way at the monolith: sent by the gateway, and
        being answered by the monolith (a call the gateway gave up on may still run there)."""
        sent = self._readyz(FRONT_DOOR).get("strangler", {})
        answering = self._readyz(MONOLITH).get("under_way", {})
        counts = {
            "gateway": sent.get("to_monolith", {}).get(verb, 0) if sent else "not answering",
            "monolith": answering.get("calls", {}).get(verb, 0) if answering else "not answering",
        }
        return {where: count for where, count in counts.items() if count}

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
