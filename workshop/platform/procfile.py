"""The Procfile: a stage's one list of its processes, read by everything that needs one.

`workshop up` starts what it lists (and tells each process where the others listen:
SEARCH_URL, ...), the gateway calls, checks and counts every service it lists, and the
tests hold the compose files and Kubernetes manifests to it. Adding a service to a stage
is its folder and one line here; docs/add-a-service.md walks it.
"""

import re
from pathlib import Path

# Which of its Procfiles a stage runs, when not `Procfile` (set by `workshop up`).
PROCFILE_ENV = "WORKSHOP_PROCFILE"
DEFAULT = "Procfile"
FRONT_DOOR = "web"  # the first process: the gateway, which no other process calls
LISTENS = re.compile(r"\$\{?PORT\}?")  # where a command is told its port: $PORT, ${PORT}


def entries(procfile: Path) -> list[tuple[str, str]]:
    """Return each process's (name, command), in the file's order."""
    found = []
    for line in procfile.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, command = line.partition(":")
            found.append((name.strip(), command.strip()))
    return found


def services(procfile: Path) -> tuple[str, ...]:
    """Return the services behind the front door: every process whose command is given its
    port ($PORT), named as hosts are (recommend_v1: recommend-v1). Not 04's Celery worker
    and beat: the gateway never calls them (the worker's /healthz, on the PORT of its
    environment, is ingest's to ask)."""
    return tuple(
        name.replace("_", "-")
        for name, command in entries(procfile)
        if name != FRONT_DOOR and LISTENS.search(command)
    )
