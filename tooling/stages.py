"""The stages of the workshop and the processes each one runs, read from their folders.

The stage folders are the one list of stages: a folder NN-name with a Procfile is a stage,
its README's title says its lesson, and its Procfile names its processes.

A stage folder's Procfile lists its processes once; `workshop up` and honcho both run
it. Ports follow honcho's rule, so both runners agree: process i gets PORT = base + 100*i,
and the first process is the stage's front door.
"""

import importlib
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from workshop import config
from workshop.config import ROOT
from workshop.platform import procfile

PORT_STEP = 100
# The app a Procfile command serves: 'gateway:create_app()' or 'search.tasks:app'.
APP_TARGET = re.compile(r"'(\w+)[.:][\w.:()]*'")


@dataclass(frozen=True)
class Process:
    """One line of a Procfile: a name and its command (with $VARIABLES unexpanded)."""

    name: str
    command: str

    @property
    def package(self) -> str | None:
        """Return the stage package the command serves ('search:create_app()' -> search)."""
        found = APP_TARGET.search(self.command)
        return found.group(1) if found else None


@dataclass(frozen=True)
class Stage:
    """A stage folder: its name, its lesson (its README's title), and its processes."""

    name: str
    path: Path
    # Which Procfile it runs: "Procfile", or a mode's ("Procfile.strangler": --strangler).
    procfile_name: str = procfile.DEFAULT

    @property
    def mode(self) -> str:
        """Return the mode it runs in ("strangler"), or "" for the stage itself."""
        return self.procfile_name.partition(".")[2]

    def modes(self) -> list[str]:
        """Return the other ways the stage can run: one Procfile.MODE each."""
        return sorted(p.name.partition(".")[2] for p in self.path.glob(f"{procfile.DEFAULT}.*"))

    def in_mode(self, mode: str) -> "Stage":
        """Return the stage run from its Procfile.MODE, or raise KeyError."""
        if mode not in self.modes():
            raise KeyError(mode)
        return replace(self, procfile_name=f"{procfile.DEFAULT}.{mode}")

    @property
    def summary(self) -> str:
        """Return the stage's lesson in a few words: its README's title after the dash."""
        title = (self.path / "README.md").read_text(encoding="utf-8").splitlines()[0]
        return title.lstrip("# ").split(" — ", 1)[-1]

    @property
    def procfile(self) -> Path:
        return self.path / self.procfile_name

    def processes(self) -> list[Process]:
        """Return the processes of the stage's Procfile, front door first."""
        return [Process(name, command) for name, command in procfile.entries(self.procfile)]

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


class NoStages(LookupError):
    """No stage folder was found: the command runs outside the workshop's repository."""


def no_stages_message() -> str:
    """Say in one line why there are no stages, and how to get them."""
    home = config.env(config.HOME_ENV)
    if home:
        return (f"{config.HOME_ENV}={home} holds no stage folder (NN-name/Procfile): point it "
                "at your copy of the workshop's repository")  # fmt: skip
    return (f"no workshop stages in {ROOT} or its parents: the workshop runs from its "
            "repository (git clone it, or copy it from the instructor); cd into it, or set "
            f"{config.HOME_ENV} to it")  # fmt: skip


def all_stages() -> list[Stage]:
    """Return every stage, in workshop order: each folder NN-name that has a Procfile."""
    folders = sorted(p.parent for p in ROOT.glob(config.STAGE_PROCFILES))
    return [Stage(folder.name, folder) for folder in folders]


def required_stages() -> list[Stage]:
    """Return every stage, or raise NoStages saying where the command looked."""
    found = all_stages()
    if not found:
        raise NoStages(no_stages_message())
    return found


def get_stage(name: str) -> Stage:
    """Return a stage by its folder name (or its number: "1", "01"), or raise KeyError
    (NoStages when there is no stage at all)."""
    for stage in required_stages():
        number = stage.name.split("-", 1)[0]
        if name in (stage.name, number, number.lstrip("0")):
            return stage
    raise KeyError(name)


def expand(command: str, env: dict[str, str]) -> str:
    """Expand $NAME and ${NAME} from env, as the shell would in a Procfile."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), command)
