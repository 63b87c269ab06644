"""The stages of the workshop and the processes each one runs, read from its Procfile.

A stage folder's Procfile lists its processes once; `workshop up` and honcho both run
it. Ports follow honcho's rule, so both runners agree: process i gets PORT = base + 100*i,
and the first process is the stage's front door.
"""

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from workshop.config import ROOT

PORT_STEP = 100


@dataclass(frozen=True)
class Process:
    """One line of a Procfile: a name and its command (with $VARIABLES unexpanded)."""

    name: str
    command: str


@dataclass(frozen=True)
class Stage:
    """A stage folder: its name, one-line lesson, and processes."""

    name: str
    summary: str
    path: Path

    @property
    def procfile(self) -> Path:
        return self.path / "Procfile"

    def processes(self) -> list[Process]:
        """Return the processes of the stage's Procfile, front door first."""
        processes = []
        for line in self.procfile.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, command = line.partition(":")
            processes.append(Process(name.strip(), command.strip()))
        return processes

    def packages(self) -> list[str]:
        """Return the names of the stage's top-level packages (front, gateway, search, ...)."""
        return sorted(p.parent.name for p in self.path.glob("*/__init__.py"))

    def load(self, package: str) -> ModuleType:
        """Import one of the stage's packages from the stage's own folder, afresh.

        Stages reuse package names on purpose (every front door is `front` until 03's
        `gateway`; 03 and 04 have the same services), so only this stage's folder may be
        on sys.path: a package of the same name loaded from another stage is forgotten
        first. `gunicorn --chdir STAGE` gives a running stage the same view.
        """
        stage_folders = {str(stage.path) for stage in all_stages()}
        sys.path[:] = [entry for entry in sys.path if entry not in stage_folders]
        sys.path.insert(0, str(self.path))
        names = {name for stage in all_stages() for name in stage.packages()}
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if name.split(".")[0] in names and not origin.startswith(str(self.path) + "/"):
                del sys.modules[name]
        return importlib.import_module(package)

    def ports(self, base: int) -> dict[str, int]:
        """Return each process's port when the front door listens on `base`."""
        return {p.name: base + PORT_STEP * i for i, p in enumerate(self.processes())}


# Adding a stage to the workshop is one line here (and its folder).
STAGES: dict[str, str] = {
    "01-monolith": "one Flask app, Jinja pages + JSON API, one MongoDB database",
    "02-rest-api": "the data behind an Eve REST API; the web front calls it over HTTP",
    "03-services": "one verb per service, a database each, a broker, a sync service, a gateway",
}


def all_stages() -> list[Stage]:
    """Return every stage, in workshop order."""
    return [Stage(name, summary, ROOT / name) for name, summary in STAGES.items()]


def get_stage(name: str) -> Stage:
    """Return a stage by its folder name (or its number: "1", "01"), or raise KeyError."""
    for stage in all_stages():
        number = stage.name.split("-", 1)[0]
        if name in (stage.name, number, number.lstrip("0")):
            return stage
    raise KeyError(name)


def expand(command: str, env: dict[str, str]) -> str:
    """Expand $NAME and ${NAME} from env, as the shell would in a Procfile."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), command)
