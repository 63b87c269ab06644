"""Structured logs (issue 11): one click's log lines, from every process, carry one request
id and one trace id."""

import json
import uuid

import pytest

from tests.acceptance.stage import Client, RunningStage, eventually
from workshop import logs, tracing

WITHIN = 30.0


@pytest.fixture(params=["03-services", "04-async"])
def logging_stage(request, tmp_path):
    """A stage writing JSON log lines, traced (to a file of the test's own)."""
    running = RunningStage(request.param, tmp_path, importers=True)
    running.env["WORKSHOP_LOG_FORMAT"] = "json"
    running.env[tracing.TRACE_FILE_ENV] = str(tmp_path / "traces.jsonl")
    running.start()
    yield running
    assert running.stop() == 0, running.log_tail()


def json_lines(running: RunningStage) -> list[dict]:
    """The JSON log lines of the stage's processes (`name | {...}` in its output)."""
    found = []
    for line in running.log_path.read_text(errors="replace").splitlines():
        _, bar, rest = line.partition(" | ")
        if bar and rest.startswith("{"):
            try:
                found.append(json.loads(rest))
            except ValueError:
                continue
    return found


def test_every_line_of_a_request_carries_its_request_and_trace_id(logging_stage):
    client = Client(logging_stage.url, logging_stage.importer)
    _, _, token = client.new_user()
    post_id = client.get("/api/search", params={"q": "docker"}).json()["items"][0]["id"]
    request_id = f"test-{uuid.uuid4().hex}"
    answer = client.post(
        f"/api/posts/{post_id}/tags",
        token=token,
        json={"tag": f"t-{uuid.uuid4().hex[:8]}"},
        headers={logs.REQUEST_ID_HEADER: request_id},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers[logs.REQUEST_ID_HEADER] == request_id  # nginx's id is kept

    mine = eventually(
        lambda: [line for line in json_lines(logging_stage) if line["request_id"] == request_id],
        lambda lines: {"gateway", "tag"} <= {line["service"] for line in lines},
        within=WITHIN,
    )
    served = {(line["service"], line["http"]["status"]) for line in mine if "http" in line}
    assert {("gateway", 201), ("tag", 201)} <= served, mine
    assert len({line["trace_id"] for line in mine}) == 1, mine
    assert all(len(line.get("trace_id", "")) == 32 for line in mine), mine

    # Without an id, the gateway makes one, and its services log under it too.
    made = client.get("/api/tags").headers[logs.REQUEST_ID_HEADER]
    assert made and made != request_id
    theirs = eventually(
        lambda: {
            line["service"] for line in json_lines(logging_stage) if line["request_id"] == made
        },  # fmt: skip
        lambda services: {"gateway", "tag"} <= services,
        within=WITHIN,
    )
    assert {"gateway", "tag"} <= theirs
