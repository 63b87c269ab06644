"""Stage 03's rules, checked in the code: services never call each other, never open
another's database, and the gateway holds no data."""

import ast

import pytest

from tooling.stages import get_stage

STAGE03 = get_stage("03-services")
STAGE = STAGE03.path
GATEWAY = STAGE03.processes()[0].package
# Every process but the front door is a service: its package, from the Procfile.
SERVICES = sorted({p.package for p in STAGE03.processes()[1:]})
HTTP_CLIENTS = {"requests", "httpx", "aiohttp", "urllib3", "urllib.request", "http.client"}
STORE_ACCESS = {
    "pymongo",
    "mongomock",
    "workshop.db",
    "workshop.queries",
    "workshop.job_records",
    "bson",
}


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
    others = {s for s in (*SERVICES, GATEWAY) if s != service}
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
    imported = imports_of(GATEWAY)
    assert not {m for m in imported if m in STORE_ACCESS or top(m) in STORE_ACCESS}


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "recommend"])
def test_each_service_opens_the_database_named_after_it(service, monkeypatch):
    monkeypatch.setenv("WORKSHOP_SEED_SAMPLE", "0")
    package = get_stage("03-services").load(service)
    app = package.create_app({"TESTING": True, "START_WORKERS": False})
    assert app.extensions["service"].database.name == service


def test_the_gateway_routes_to_every_service_of_the_procfile():
    upstreams = STAGE03.load("gateway.upstreams")
    assert sorted(upstreams.SERVICES) == sorted(
        p.name.replace("_", "-") for p in STAGE03.processes()[1:]
    )


def test_the_chassis_knows_no_service():
    assert {top(m) for m in imports_of("chassis")} & {*SERVICES, GATEWAY} == set()
