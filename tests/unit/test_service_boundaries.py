"""Stage 03's rules, checked in the code: services never call each other, never open
another's database, and the gateway holds no data."""

import ast
from pathlib import Path

import pytest

from workshop.tools.stages import get_stage

STAGE = Path(__file__).resolve().parents[2] / "03-services"
SERVICES = ("users", "ingest", "search", "recommend", "tag", "sync")
HTTP_CLIENTS = {"requests", "httpx", "aiohttp", "urllib3", "urllib.request", "http.client"}
STORE_ACCESS = {"pymongo", "mongomock", "workshop.db", "workshop.queries", "bson"}


def imports_of(package: str) -> set[str]:
    """Every module imported anywhere in a service's package."""
    found: set[str] = set()
    for path in (STAGE / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service):
    others = {s for s in (*SERVICES, "gateway") if s != service}
    assert {top(m) for m in imports_of(service)} & others == set()


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_makes_no_http_calls(service):
    imported = imports_of(service)
    assert not {m for m in imported if m in HTTP_CLIENTS or top(m) in HTTP_CLIENTS}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reaches_its_store_only_through_its_own_handle(service):
    # chassis.service hands each service the database named after it (get_db); a service
    # that imported workshop.db could open any database by name.
    assert "workshop.db" not in imports_of(service)


def test_the_gateway_holds_no_data():
    imported = imports_of("gateway")
    assert not {m for m in imported if m in STORE_ACCESS or top(m) in STORE_ACCESS}


@pytest.mark.parametrize("service", ["users", "ingest", "search", "tag", "sync"])
def test_each_service_opens_the_database_named_after_it(service, monkeypatch):
    monkeypatch.setenv("WORKSHOP_SEED_SAMPLE", "0")
    package = get_stage("03-services").load(service)
    app = package.create_app({"TESTING": True, "START_WORKERS": False})
    assert app.extensions["service"].database.name == service
