"""What a running instance says of itself, and how a gateway lists a service's instances.

Stages 03 and 04 share this: each instance says which code it runs (`version`) and since
when (`started`) in its registry entry (read back by `entry`) and on its /readyz, and the
gateway's /readyz lists every instance of a service with its own health, and sends calls
only to an instance whose /readyz has said it takes them (`Admissions`). The two gateways
differ only in how they ask the instances (threads in 03, awaited together in 04), so the
asking stays in each stage's gateway/client.py and what is made of the answers lives here.
"""

import datetime
import importlib.metadata
import json
import time
from typing import Any

from workshop import config

# The installed project (pyproject.toml's name): its version is the code's version.
PROJECT = "workshop"
# When this process started (its first import of this module), in UTC.
STARTED = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def code_version() -> str:
    """Return the version of the code this instance runs: SERVICE_VERSION when set (a
    canary or a rolling upgrade names its own), else the installed project's version."""
    override = config.env("SERVICE_VERSION")
    if override:
        return override
    try:
        return importlib.metadata.version(PROJECT)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def about() -> dict[str, str]:
    """Return what an instance says of itself in the registry and on /readyz."""
    return {"version": code_version(), "started": STARTED}


def entry(address: str, value: bytes | None) -> dict[str, Any]:
    """Return an instance as its registry entry (JSON, or None) describes it: its address
    with the version and start the entry holds (null where it does not say)."""
    try:
        fields = json.loads(value) if value else {}
    except ValueError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    return {"address": address, "version": fields.get("version"), "started": fields.get("started")}


def health(status: int | None) -> str:
    """Return what a /readyz status says: "ready", "not ready", or "unreachable" (none)."""
    return "unreachable" if status is None else "ready" if status == 200 else "not ready"


def listed(
    instance: dict[str, Any], status: int | None, body: Any, started: float
) -> dict[str, Any]:
    """Return an instance as /readyz lists it: what the registry says of it, else what it
    says of itself on its /readyz, its health, and how long asking took."""
    said = body if isinstance(body, dict) else {}
    return {
        "address": instance["address"],
        "version": instance.get("version") or said.get("version"),
        "started": instance.get("started") or said.get("started"),
        "status": health(status),
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def readiness(checked: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Return a service's readiness from its instances': ok when one is ready, the backlog
    all of theirs, what fails when none is (`failing`: the checks their /readyz names, as
    `worker` or `broker`), a start-up still loading if one is (its `bootstrap`), and the
    list."""
    instances = [instance for instance, _ in checked]
    dependencies = [body.get("dependencies") or {} for _, body in checked]
    state: dict[str, Any] = {
        "ok": any(instance["status"] == "ready" for instance in instances),
        "backlog": sum((d.get("backlog") or {}).get("waiting", 0) for d in dependencies),
    }
    if not state["ok"]:
        state["failing"] = sorted({name for depends in dependencies
                                   for name, check in depends.items()
                                   if isinstance(check, dict) and not check.get("ok")})  # fmt: skip
    for depends in dependencies:
        if not depends.get("bootstrap", {"ok": True}).get("ok"):
            state["bootstrap"] = depends["bootstrap"]  # still loading its start-up data
            break
    state["instances"] = instances
    return state


def takes_calls(health: str, body: Any) -> bool:
    """Tell whether an instance may be sent calls, by its /readyz answer (its `health` and
    body): once its start-up data is in. Ready, or not ready for another reason than that
    (its `bootstrap`): a store or broker outage later leaves its answers right, and a
    gateway that stopped calling every service for a broker outage would take the whole
    site down with it. The registry's heartbeat keeps the same rule (an instance registers
    once bootstrapped)."""
    if health == "ready":
        return True
    depends = body.get("dependencies") if health == "not ready" and isinstance(body, dict) else None
    if not isinstance(depends, dict):
        return False  # no answer, or not an instance's readiness
    bootstrap = depends.get("bootstrap", {"ok": True})  # only a subscriber starts empty
    return isinstance(bootstrap, dict) and bootstrap.get("ok") is True


class Admissions:
    """The instances a gateway sends calls to: those whose /readyz said they take calls.

    An instance not yet admitted is asked (its /readyz) before a call goes to it, again at
    most every RECHECK_SECONDS while it is still loading; calls meanwhile hear that the
    service is starting, as they do while it does not answer in time (its process is still
    booting, or too busy loading to say so). Once in, it stays in: the gateway's own
    /readyz, which asks every instance, takes it out if it says it is loading again, and a
    call that finds nobody at its address makes the next call ask first (a process started
    again may start empty). One that refuses connections, or took calls before and does
    not answer now, is down.
    Plain dict and set updates: safe from 03's threads and on 04's one event loop.
    """

    RECHECK_SECONDS = 0.5

    def __init__(self) -> None:
        self._admitted: set[str] = set()
        self._served: set[str] = set()
        self._asked: dict[str, float] = {}

    def admitted(self, address: str) -> bool:
        """Tell whether calls may go to this instance."""
        return address in self._admitted

    def served(self, address: str) -> bool:
        """Tell whether this instance has taken calls since the gateway started."""
        return address in self._served

    def due(self, address: str) -> bool:
        """Tell whether to ask an instance that is not admitted (not asked just now)."""
        asked = self._asked.get(address)
        return asked is None or time.monotonic() - asked >= self.RECHECK_SECONDS

    def loading(self, address: str) -> bool:
        """Tell whether an instance was found starting just now (calls had better go to
        another instance of the service, if there is one)."""
        return not self.admitted(address) and not self.due(address)

    def record(self, address: str, takes: bool) -> None:
        """Note what an instance's /readyz said (or, False, that one which never took calls
        did not answer in time): it takes calls, or not yet."""
        self._asked[address] = time.monotonic()
        if takes:
            self._admitted.add(address)
            self._served.add(address)
        else:
            self._admitted.discard(address)

    def record_checked(self, checked: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Note what each instance's /readyz said, as the gateway's own /readyz found it
        (an instance and its answer's body): one that did not answer in time is left as it
        was (slow is not starting)."""
        for instance, body in checked:
            if instance["status"] != health(None):
                self.record(instance["address"], takes_calls(instance["status"], body))

    def forget(self, address: str) -> None:
        """Ask an instance again before the next call: nobody answered at its address."""
        self._admitted.discard(address)
        self._asked.pop(address, None)
