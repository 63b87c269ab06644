"""What a running instance says of itself, and how a gateway lists a service's instances.

Stages 03 and 04 share this: each instance says which code it runs (`version`) and since
when (`started`) in its registry entry (read back by `entry`) and on its /readyz, and the
gateway's /readyz lists every instance of a service with its own health. The two gateways
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


def listed(
    instance: dict[str, Any], status: int | None, body: Any, started: float
) -> dict[str, Any]:
    """Return an instance as /readyz lists it: what the registry says of it, else what it
    says of itself on its /readyz, its health, and how long asking took."""
    said = body if isinstance(body, dict) else {}
    health = "unreachable" if status is None else "ready" if status == 200 else "not ready"
    return {
        "address": instance["address"],
        "version": instance.get("version") or said.get("version"),
        "started": instance.get("started") or said.get("started"),
        "status": health,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def readiness(checked: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Return a service's readiness from its instances': ok when one is ready, the backlog
    all of theirs, a start-up still loading if one is (its `bootstrap`), and the list."""
    instances = [instance for instance, _ in checked]
    dependencies = [body.get("dependencies") or {} for _, body in checked]
    state: dict[str, Any] = {
        "ok": any(instance["status"] == "ready" for instance in instances),
        "backlog": sum((d.get("backlog") or {}).get("waiting", 0) for d in dependencies),
    }
    for depends in dependencies:
        if not depends.get("bootstrap", {"ok": True}).get("ok"):
            state["bootstrap"] = depends["bootstrap"]  # still loading its start-up data
            break
    state["instances"] = instances
    return state
