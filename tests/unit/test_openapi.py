"""docs/openapi.yaml is a valid OpenAPI document and names exactly the routes each app serves."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from tooling.stages import all_stages, get_stage

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
# Flask answers these by itself for every route; the contract does not list them.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}


# The front door is each stage's first process (Procfile's `web`): its package's create_app.
TEST_CONFIG = {"TESTING": True, "SEED_SAMPLE": False, "DATABASE_NAME": "test-openapi"}
STAGES = [stage.name for stage in all_stages()]


def build_front_door(stage_name: str) -> Flask:
    """Load a stage's front door package from its folder (stages share names) and build it."""
    stage = get_stage(stage_name)
    package = stage.processes()[0].package
    assert package, f"{stage.name}'s Procfile names no app for its front door"
    return stage.load(package).create_app(TEST_CONFIG)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


def _validation_errors(document: dict[str, Any]) -> list[str]:
    """Validate against the OpenAPI meta-schema with whichever validator is installed."""
    try:
        from openapi_spec_validator import validate
    except ImportError:
        pass
    else:
        validate(document)
        return []
    try:
        # schemathesis (a dev dependency) ships the official OpenAPI 3.0/3.1 meta-schemas.
        from schemathesis.specs.openapi import definitions
    except ImportError:
        pytest.skip("no OpenAPI validator installed (openapi_spec_validator or schemathesis)")
    version = str(document.get("openapi", ""))
    validator = (
        definitions.OPENAPI_31_VALIDATOR
        if version.startswith("3.1")
        else definitions.OPENAPI_30_VALIDATOR
    )
    return [str(error) for error in validator.iter_errors(document)]


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    assert str(document["openapi"]).startswith(("3.0.", "3.1."))
    assert _validation_errors(document) == []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _references(value)]
    return []


def test_the_servers_own_limits_are_documented(document: dict[str, Any]) -> None:
    """A status the HTTP server answers before the app (no operation lists it) is described."""
    web = get_stage("04-async").load("chassis.web")  # 04 applies gunicorn's limit itself
    description = document["info"]["description"]
    assert "**414**" in description and f"{web.MAX_REQUEST_LINE} bytes" in description


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    for ref in _references(document):
        _resolve(document, ref)


def _operations(
    document: dict[str, Any], stage: str | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation, or those one stage serves (an `x-stages` list names the only ones)."""
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and stage in operation.get("x-stages", [stage])
    ]


def _declared_path_parameters(document: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    parameters = [
        _resolve(document, p["$ref"]) if "$ref" in p else p for p in operation.get("parameters", [])
    ]
    return {p["name"] for p in parameters if p["in"] == "path"}


def test_operations_are_complete(document: dict[str, Any]) -> None:
    """Each operation: an id, its path parameters declared, JSON errors in the one shape."""
    operation_ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(operation_ids) == len(set(operation_ids))
    error_ref = "#/components/schemas/Error"
    for path, method, operation in _operations(document):
        where = f"{method.upper()} {path}"
        assert _declared_path_parameters(document, operation) == set(
            re.findall(r"{(\w+)}", path)
        ), where
        for status, response in operation["responses"].items():
            if "$ref" in response:
                response = _resolve(document, response["$ref"])
            if str(status).startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, f"{where} {status}"


def test_request_bodies_refuse_unknown_fields(document: dict[str, Any]) -> None:
    """A JSON body the API reads lists its fields: the API refuses any other with 400."""
    # An uploaded listing is a file's content, with whatever fields reddit wrote.
    uploads = {"#/components/schemas/RedditListing"}
    for path, method, operation in _operations(document):
        if "requestBody" not in operation:
            continue
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        for alternative in schema.get("oneOf", [schema]):
            if alternative.get("$ref") in uploads or alternative.get("type") == "array":
                continue
            if "$ref" in alternative:
                alternative = _resolve(document, alternative["$ref"])
            assert alternative["type"] == "object", f"{method.upper()} {path}"
            assert alternative["additionalProperties"] is False, f"{method.upper()} {path}"
            assert alternative["required"], f"{method.upper()} {path}"


def test_topics_are_the_vocabulary(document: dict[str, Any]) -> None:
    from workshop.domain.topics import TOPICS

    assert document["components"]["schemas"]["Topic"]["enum"] == list(TOPICS)


def test_post_schema_has_every_public_field(document: dict[str, Any]) -> None:
    from workshop.domain.posts import POST_FIELDS

    post = document["components"]["schemas"]["Post"]
    assert list(post["properties"]) == list(POST_FIELDS)
    assert set(post["required"]) == set(POST_FIELDS)


def test_job_schema_has_every_field_a_job_answers(document: dict[str, Any]) -> None:
    from workshop.job_records import JOB_COUNTS, public_job

    job = {"_id": "j1", "state": "failed", "source": "upload", "error": "bad", "created_at": 0}
    job.update(dict.fromkeys(JOB_COUNTS, 1))
    schema = document["components"]["schemas"]["Job"]
    assert set(public_job(job)) == set(schema["properties"])
    assert set(JOB_COUNTS) <= set(schema["required"])


def _app_operations(app: Flask) -> set[tuple[str, str]]:
    """Return (path, method) of the app's JSON routes, in OpenAPI's path syntax."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule in ("/healthz", "/readyz")):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in set(rule.methods or ()) - IMPLICIT_METHODS:
            operations.add((path, method.lower()))
    return operations


@pytest.mark.parametrize("stage_dir", STAGES)
def test_document_names_exactly_the_app_routes(document: dict[str, Any], stage_dir: str) -> None:
    documented = {(path, method) for path, method, _ in _operations(document, stage_dir)}
    served = _app_operations(build_front_door(stage_dir))
    assert sorted(served - documented) == [], "served but not in docs/openapi.yaml"
    assert sorted(documented - served) == [], "in docs/openapi.yaml but not served"


def test_an_operation_only_some_stages_serve_names_stages_there_are(document):
    for path, method, operation in _operations(document):
        named = operation.get("x-stages", STAGES)
        assert named and set(named) <= set(STAGES), (path, method, named)
