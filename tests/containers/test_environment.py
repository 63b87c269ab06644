"""What the compose files tell the app containers: JSON log lines everywhere, and no variable
that nothing in the container reads.

A variable counts as read when the stage's code, or a shared module it imports (however
indirectly), names it as a string (`config.env("BROKER_URL")`, `METRICS_HOST_ENV =
"WORKSHOP_METRICS_HOST"`), when a gateway builds it from the name of one of its upstreams
(`SEARCH_URL` from "search" in gateway/upstreams.py's SERVICES), when the container's own
command or healthcheck uses it, or when a known program reads it (THIRD_PARTY).
"""

import ast
import functools
from pathlib import Path

import pytest

from tests.containers.project import COMPOSE_FILES, ROOT, resolved, stage_of
from tooling.stages import Stage
from workshop.platform import procfile

APP_DOCKERFILE = "docker/app.Dockerfile"
SHARED = ROOT / "workshop"
# Variables read by a program that is not ours, and which one.
THIRD_PARTY = {
    "PYTHONUNBUFFERED": "CPython: output unbuffered, so each log line leaves at once",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "OpenTelemetry's OTLP exporter (and workshop/tracing.py)",
}

compose_files = pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=lambda p: p.stem)


def app_services(compose_file: Path, folder: Path) -> dict[str, dict]:
    """Return the compose file's services built from the app image (the stage's processes)."""
    services = resolved(compose_file, folder)["services"]
    return {name: service for name, service in services.items()
            if service.get("build", {}).get("dockerfile") == APP_DOCKERFILE}  # fmt: skip


def module_file(name: str) -> Path | None:
    """Return the file of a module of the shared package (workshop.x.y), if it is one."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def shared_imports(tree: ast.Module) -> set[str]:
    """Return the shared modules a file imports: workshop.x, and its parent packages."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # submodules
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "workshop":
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {name for name in found if module_file(name)}


def named_strings(tree: ast.Module) -> set[str]:
    """Return the strings a file names in code (docstrings are prose, not reads)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    }  # fmt: skip


def upstream_addresses(stage: Stage) -> set[str]:
    """Return the addresses a gateway reads: <SERVICE>_URL for each service its stage's
    Procfile lists (gateway/upstreams.py: SERVICES)."""
    if not (stage.path / "gateway" / "upstreams.py").is_file():
        return set()
    services = procfile.services(stage.procfile)
    return {f"{service.upper().replace('-', '_')}_URL" for service in services}


@functools.cache
def read_by(stage: Stage) -> frozenset[str]:
    """Return every string the stage's code and the shared modules it imports name."""
    seen: set[str] = set()
    strings: set[str] = set()
    pending = [path for path in stage.path.rglob("*.py")]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        strings |= named_strings(tree)
        pending += [module_file(name) for name in shared_imports(tree)]  # type: ignore[misc]
    return frozenset(strings | upstream_addresses(stage))


@compose_files
def test_every_app_process_writes_json_log_lines(compose_file, tmp_path):
    for name, service in app_services(compose_file, tmp_path).items():
        assert service["environment"].get("WORKSHOP_LOG_FORMAT") == "json", name
    assert "WORKSHOP_LOG_FORMAT" in read_by(stage_of(compose_file))  # and the stage reads it


@compose_files
def test_every_variable_an_app_container_gets_is_read_there(compose_file, tmp_path):
    stage = stage_of(compose_file)
    unread = []
    for name, service in app_services(compose_file, tmp_path).items():
        own = " ".join(service["command"]) + " ".join(service["healthcheck"]["test"])
        for variable in service["environment"]:
            if variable not in read_by(stage) | set(THIRD_PARTY) and variable not in own:
                unread.append(f"{name}: {variable}")
    assert not unread, f"set in {compose_file.name}, read by nothing there: {unread}"


def test_the_check_sees_what_a_stage_reads_and_what_it_does_not():
    """The reading rules above, held to a few known cases (else they could pass anything)."""
    monolith, services = (
        stage_of(ROOT / "docker" / "01-monolith.yaml"),
        stage_of(ROOT / "docker" / "03-services.yaml"),
    )
    # 01's front reads the seed switch itself, and the secret through workshop.config.
    assert {"WORKSHOP_SEED_SAMPLE", "SECRET_KEY", "MONGO_URL"} <= read_by(monolith)
    # Only a stage with a registry advertises its services' addresses; only a gateway
    # calls its services by address, and nobody calls the front door.
    assert "ADVERTISE_URL" not in read_by(monolith) and "ADVERTISE_URL" in read_by(services)
    assert "SEARCH_URL" in read_by(services) and "SEARCH_URL" not in read_by(monolith)
    assert "WEB_URL" not in read_by(services)
    # A docstring that names a variable does not read it.
    tree = ast.parse('"""Reads WORKSHOP_SOMETHING."""\nX = env("WORKSHOP_OTHER")\n')
    assert named_strings(tree) == {"WORKSHOP_OTHER"}
