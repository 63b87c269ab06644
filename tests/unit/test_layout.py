"""The layout keeps each lesson in its stage: the shared package holds only what several
stages use, no stage code reaches into the tooling (a top-level package of its own), the
shared package knows no stage, and the embedded MongoDB (a top-level package too) is a
stand-in for a server that only workshop/db.py knows of."""

import ast
from pathlib import Path

import pytest

from tooling.stages import all_stages, get_stage
from workshop.config import ROOT

SHARED = ROOT / "workshop"
TOOLING = "tooling"
EMBEDDED = "embedded_mongo"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SHARED_MODULES = {module_name(path): path for path in SHARED.rglob("*.py")}
RUNTIME_MODULES = sorted(SHARED_MODULES)  # the tooling is a package of its own (tooling/)


def imports_in(path: Path) -> set[str]:
    """The modules a file imports when it runs, with `from workshop import config` read as
    workshop.config (an import under `if TYPE_CHECKING:` names a type, and runs nothing)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def shared_modules_used_by(folder: Path) -> set[str]:
    """Every shared module a stage's code needs, directly or through other shared modules."""
    wanted = {m for path in folder.rglob("*.py") for m in imports_in(path)}
    used: set[str] = set()
    while wanted:
        module = wanted.pop()
        if module in SHARED_MODULES and module not in used:
            used.add(module)
            wanted |= imports_in(SHARED_MODULES[module])
            wanted.add(module.rpartition(".")[0])  # importing a.b runs a/__init__.py too
    return used


USED_BY = {stage.name: shared_modules_used_by(stage.path) for stage in all_stages()}


@pytest.mark.parametrize("module", [m for m in RUNTIME_MODULES if m != "workshop"])
def test_the_shared_package_holds_only_what_several_stages_use(module):
    stages = sorted(name for name, used in USED_BY.items() if module in used)
    assert len(stages) >= 2, f"{module} is used by {stages or 'no stage'}: move it into the stage"


@pytest.mark.parametrize("stage", [stage.name for stage in all_stages()])
def test_no_stage_imports_the_tooling(stage):
    folder = get_stage(stage).path
    imported = {m for path in folder.rglob("*.py") for m in imports_in(path)}
    assert not {m for m in imported if m.split(".")[0] == TOOLING}


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_the_shared_package_imports_no_stage_and_no_tooling(module):
    stage_packages = {name for stage in all_stages() for name in stage.packages()}
    imported = imports_in(SHARED_MODULES[module])
    assert not {m for m in imported if m.split(".")[0] in stage_packages}
    assert not {m for m in imported if m.split(".")[0] == TOOLING}


@pytest.mark.parametrize("stage", [s.name for s in all_stages() if s.name < "03"])
def test_the_stages_before_03_run_nothing_of_the_services_platform(stage):
    """workshop/platform/ is stage 03's on (broker, messages, metrics...): 01 and 02 never
    run it, so a learner of 01 reads the shared modules 01 runs and no more."""
    assert not {m for m in USED_BY[stage] if m.startswith("workshop.platform")}


def test_the_tooling_loads_no_stage_code():
    """The tooling drives a stage as a user would (its Procfile's commands, HTTP, the
    broker), never by importing one of its modules (Stage.load is the tests' own)."""
    for path in (ROOT / TOOLING).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            loads = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            )
            assert not loads, f"{path.relative_to(ROOT)}:{node.lineno} loads a stage's module"


def test_only_the_db_handle_knows_the_embedded_mongodb_and_it_knows_no_one():
    """A stage talks to MongoDB through PyMongo; with MONGO_URL unset workshop/db.py hands
    it the embedded one instead, as a server would stand behind a URL."""
    knowing = sorted(
        str(path.relative_to(ROOT))
        for folder in [SHARED, *(stage.path for stage in all_stages())]
        for path in folder.rglob("*.py")
        if any(m.split(".")[0] == EMBEDDED for m in imports_in(path))
    )
    assert knowing == ["workshop/db.py"]
    for path in (ROOT / EMBEDDED).rglob("*.py"):
        roots = {m.split(".")[0] for m in imports_in(path)}
        stage_packages = {name for stage in all_stages() for name in stage.packages()}
        assert not roots & {"workshop", TOOLING, *stage_packages}, path
