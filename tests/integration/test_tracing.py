"""Tracing (issue 11): one click is one trace across the gateway, services, broker and Celery.

In process, the SDK's in-memory exporter shows the envelope carrying the context through
the real broker; on the real multi-process stages, the file exporter shows a tag request
(and on 04 an ingest) as one trace; with nothing configured, nothing of it is loaded.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.acceptance.stage import Client, RunningStage, eventually
from tests.timing import scaled
from tooling.stages import get_stage
from workshop import config, tracing
from workshop import db as databases
from workshop.platform.messages import POST_UPSERTED, TAGS_CHANGED, Message

STAGES = ["03-services", "04-async"]
WITHIN = 30.0
broker_module = get_stage("03-services").load("chassis.messaging.broker")
outbox = get_stage("03-services").load("chassis.messaging.outbox")

# Builds a service's app without starting its workers, then says what tracing loaded.
PROBE = """
import json, sys
from tag import create_app
from workshop import tracing
from workshop.platform import messages
app = create_app({"START_WORKERS": False})
print(json.dumps({
    "active": tracing.active(),
    # (redis-py imports OpenTelemetry's API itself: the SDK's tracing is what counts.)
    "sdk_loaded": any(name.startswith(("opentelemetry.sdk.trace", "opentelemetry.instrumentation"))
                      for name in sys.modules),
    "outbox_fields": sorted(tracing.outbox_fields()),
}))
"""


@pytest.mark.parametrize("stage_name", STAGES)
@pytest.mark.parametrize("configured", [False, True], ids=["default", "trace-file"])
def test_tracing_is_off_unless_configured(stage_name, configured, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OTEL_") and k != tracing.TRACE_FILE_ENV}  # fmt: skip
    env.update(WORKSHOP_STATE_DIR=str(tmp_path / "state"), WORKSHOP_DATA_DIR=str(tmp_path / "run"))
    traces = tmp_path / "traces.jsonl"
    if configured:
        env[tracing.TRACE_FILE_ENV] = str(traces)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=config.ROOT / stage_name,
        env={**env, "PYTHONPATH": f"{config.ROOT / stage_name}{os.pathsep}{config.ROOT}"},
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=True,
    )
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    if configured:
        assert seen == {"active": True, "sdk_loaded": True, "outbox_fields": ["outbox_trace"]}
    else:
        # Off: the SDK's tracing is not even imported, and an outbox write records no more.
        assert seen == {"active": False, "sdk_loaded": False, "outbox_fields": []}
        assert not traces.exists()


@pytest.fixture
def recorded():
    """Spans kept in memory while the envelopes are traced with their provider."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracing.recording(provider):
        yield provider, exporter


def test_the_envelope_carries_the_trace_through_the_broker(redis_url, monkeypatch, recorded):
    """A write's context goes with its outbox mark, the publish, a forwarding hop (what sync
    does) and the apply at the end: one trace, each span under the one before."""
    monkeypatch.setenv("BROKER_URL", redis_url)
    provider, exporter = recorded
    first, second = f"it-trace-{uuid.uuid4().hex[:6]}", f"it-trace-{uuid.uuid4().hex[:6]}"
    counts = databases.database(f"it-trace-{uuid.uuid4().hex[:6]}").counts
    publisher = broker_module.Publisher()
    applied: list[tuple[Message, object]] = []

    def forward(message: Message) -> None:
        publisher.publish([message], second)

    def apply(message: Message) -> None:
        applied.append((message, trace.get_current_span().get_span_context()))

    hop = broker_module.Consumer(first, {TAGS_CHANGED: forward})
    end = broker_module.Consumer(second, {TAGS_CHANGED: apply})
    hop.start(), end.start()
    try:
        with provider.get_tracer("test").start_as_current_span("click", kind=trace.SpanKind.SERVER):
            counts.update_one({"_id": "p1"}, outbox.changed_inc({"counts.t": 1}), upsert=True)
        document = counts.find_one({"_id": "p1"})
        message = Message(TAGS_CHANGED, "p1", document["version"], {"tags": []}, "tag",
                          trace=tracing.outbox_trace(document))  # fmt: skip
        publisher.publish([message], first)
        eventually(lambda: applied, bool, within=WITHIN)
    finally:
        hop.stop(), end.stop()
        publisher.close()

    spans = {span.name + "@" + _destination(span): span for span in exporter.get_finished_spans()}
    assert set(spans) == {
        "click@",
        f"publish tags.changed@{first}",
        f"apply tags.changed@{first}",
        f"publish tags.changed@{second}",
        f"apply tags.changed@{second}",
    }
    chain = [spans["click@"], spans[f"publish tags.changed@{first}"],
             spans[f"apply tags.changed@{first}"], spans[f"publish tags.changed@{second}"],
             spans[f"apply tags.changed@{second}"]]  # fmt: skip
    assert len({span.context.trace_id for span in chain}) == 1
    for parent, child in zip(chain, chain[1:], strict=False):
        assert child.parent.span_id == parent.context.span_id, child.name
    # The handler ran inside its apply span: the store's queries would join the trace.
    assert applied[0][1].span_id == chain[-1].context.span_id
    assert applied[0][0].id == message.id, "the trace is not part of the message's id"


def _destination(span) -> str:
    return str((span.attributes or {}).get("messaging.destination.name", ""))


def spans_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def trace_of(path: Path, root_name_part: str, wanted: set[tuple[str, str]]) -> list[dict]:
    """The spans of the trace whose gateway span names `root_name_part`, once it holds the
    wanted (service, span name) pairs and the parent of every span (or what it holds at the
    deadline)."""

    def current() -> list[dict]:
        spans = spans_of(path)
        roots = [s for s in spans if s["service"] == "gateway" and s["parent_id"] is None
                 and root_name_part in s["name"]]  # fmt: skip
        if not roots:
            return []
        trace_id = roots[-1]["trace_id"]
        return [s for s in spans if s["trace_id"] == trace_id]

    # Every parent too: a parent span ends after its children (the request after the relay
    # published), so its process may write it a flush later.
    return eventually(current, lambda got: wanted <= _pairs(got) and _whole(got), within=WITHIN)


def _whole(spans: list[dict]) -> bool:
    ids = {span["span_id"] for span in spans}
    return all(span["parent_id"] is None or span["parent_id"] in ids for span in spans)


def _pairs(spans: list[dict]) -> set[tuple[str, str]]:
    return {(span["service"], span["name"]) for span in spans}


@pytest.fixture(params=STAGES)
def traced_stage(request, tmp_path):
    """A stage started as the READMEs say, `workshop up STAGE --trace`: its spans go to
    traces.jsonl in the state folder (one of the test's own here)."""
    state = tmp_path / "state"
    running = RunningStage(request.param, tmp_path, importers=True)
    running.env.pop(tracing.TRACE_FILE_ENV, None)
    running.env["WORKSHOP_STATE_DIR"] = str(state)
    running.options.append("--trace")
    running.start()
    yield running, state
    assert running.stop() == 0, running.log_tail()


def test_one_tag_click_is_one_trace_across_the_stage(traced_stage):
    running, state = traced_stage
    traces = state / "traces.jsonl"
    client = Client(running.url, running.importer)
    _, _, token = client.new_user()
    post_id = client.get("/api/search", params={"q": "docker"}).json()["items"][0]["id"]
    tag = f"t-{uuid.uuid4().hex[:8]}"
    answer = client.post(f"/api/posts/{post_id}/tags", token=token, json={"tag": tag})
    assert answer.status_code == 201, answer.text

    wanted = {
        ("users", "GET /api/me/preferences"),  # the gateway checks the token's user exists
        ("tag", "publish tags.changed"),  # the tag service's relay, from its outbox
        ("sync", "apply tags.changed"),  # sync logs it ...
        ("sync", "publish tags.changed"),  # ... and forwards it to each subscriber
        ("search", "apply tags.changed"),  # search applies it
    }
    spans = trace_of(traces, "tags", wanted)
    assert wanted <= _pairs(spans), sorted(_pairs(spans))
    assert {"gateway", "tag", "sync", "search"} <= {span["service"] for span in spans}
    by_id = {span["span_id"]: span for span in spans}
    roots = [span for span in spans if span["parent_id"] not in by_id]
    assert [(r["service"], r["kind"]) for r in roots] == [("gateway", "SERVER")], roots
    tag_server = [s for s in spans if s["service"] == "tag" and s["kind"] == "SERVER"]
    assert len(tag_server) == 1 and by_id[tag_server[0]["parent_id"]]["service"] == "gateway"

    # `workshop trace` (as the READMEs give it) draws the latest traces, this one last.
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("workshop")), "trace"],
        env={**os.environ, "WORKSHOP_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    )
    lines = shown.stdout.rstrip().split("\n\n")[-1].splitlines()
    assert lines[0].startswith(f"trace {spans[0]['trace_id']}"), shown.stdout
    assert len([line for line in lines[1:] if "|" in line]) >= len(spans)
    assert any(line.split()[0] == "search" and "apply tags.changed" in line for line in lines)


@pytest.mark.parametrize("stage_name", STAGES)
def test_an_ingest_is_one_trace_to_the_search_service(stage_name, tmp_path):
    """The import request's trace goes on with the post it stored: (on 04 the Celery task,)
    the owner's publish, sync's log and the search service's apply of the new post."""
    traces = tmp_path / "traces.jsonl"
    running = RunningStage(stage_name, tmp_path, importers=True)
    running.env[tracing.TRACE_FILE_ENV] = str(traces)
    running.start()
    owner = "ingest-worker" if stage_name == "04-async" else "ingest"
    wanted = {
        (owner, f"publish {POST_UPSERTED}"),  # the owner's relay, from its outbox
        ("sync", f"apply {POST_UPSERTED}"),  # sync logs it ...
        ("search", f"apply {POST_UPSERTED}"),  # ... and search applies it
    }
    try:
        client = Client(running.url, running.importer)
        _, _, token = client.new_importer()
        post_id = uuid.uuid4().hex[:10]
        record = {"id": post_id, "title": "Traced ingest", "subreddit": "python",
                  "author": "tester", "created_utc": 1.37e9, "score": 1, "ups": 1,
                  "downs": 0, "num_comments": 0, "is_self": "True", "selftext": "body",
                  "edited": "False"}  # fmt: skip
        listing = {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": record}]}}
        answer = client.post("/api/ingest", token=token, json=listing)
        assert answer.status_code == 202, answer.text
        # Each process writes its spans in its own time: wait for the whole chain.
        spans = trace_of(traces, "ingest", wanted)
    finally:
        assert running.stop() == 0, running.log_tail()
    assert wanted <= _pairs(spans), sorted(_pairs(spans))
    by_id = {span["span_id"]: span for span in spans}
    roots = [span for span in spans if span["parent_id"] not in by_id]
    assert [(r["service"], r["kind"]) for r in roots] == [("gateway", "SERVER")], roots
    applied = [
        s for s in spans if (s["service"], s["name"]) == ("search", f"apply {POST_UPSERTED}")
    ]
    # ... of this very post (a message's id is type/key/version).
    ids = [s["attributes"]["messaging.message.id"].split("/")[1] for s in applied]
    assert post_id in ids, applied
    if stage_name == "04-async":
        # The worker's task span (Celery's instrumentation names it run/<task>) runs under
        # the ingest service's send of it, and the publish under the task.
        task = [s for s in spans if s["service"] == owner and s["kind"] == "CONSUMER"]
        assert task and task[0]["name"].startswith("run/"), sorted(_pairs(spans))
        assert by_id[task[0]["parent_id"]]["service"] == "ingest"


# A request to a service with a collector configured: its span goes out by OTLP over HTTP.
OTLP_PROBES = {
    "03-services": """
from opentelemetry import trace
from tag import create_app
answer = create_app({"START_WORKERS": False}).test_client().get("/api/tags")
assert answer.status_code == 200, answer.status_code
trace.get_tracer_provider().force_flush()
""",
    # Through the ASGI entry (the traced one), as uvicorn calls it, once the app is serving.
    "04-async": """
import asyncio
from opentelemetry import trace
from tag import create_app
app = create_app({"START_WORKERS": False})
scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
         "scheme": "http", "path": "/api/tags", "raw_path": b"/api/tags", "query_string": b"",
         "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
         "server": ("127.0.0.1", 80)}
sent, asked = [], []
async def receive():  # the request, then nothing until the response is sent
    if asked:
        await asyncio.Event().wait()
    asked.append(1)
    return {"type": "http.request", "body": b"", "more_body": False}
async def send(message):
    sent.append(message)
async def main():
    async with app.test_app():
        await app(scope, receive, send)
asyncio.run(main())
assert sent[0]["status"] == 200, sent[0]
trace.get_tracer_provider().force_flush()
""",
}


@pytest.mark.parametrize("stage_name", STAGES)
def test_with_an_otlp_endpoint_spans_go_to_the_collector(stage_name, tmp_path):
    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OTEL_") and k != tracing.TRACE_FILE_ENV}  # fmt: skip
    env.update(
        WORKSHOP_STATE_DIR=str(tmp_path / "state"),
        WORKSHOP_DATA_DIR=str(tmp_path / "run"),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}",
        PYTHONPATH=f"{config.ROOT / stage_name}{os.pathsep}{config.ROOT}",
    )
    try:
        probe = OTLP_PROBES[stage_name]
        subprocess.run([sys.executable, "-c", probe], cwd=config.ROOT / stage_name, env=env,
                       capture_output=True, text=True, timeout=scaled(60), check=True)  # fmt: skip
    finally:
        server.shutdown()
    assert [path for path, _ in received] == ["/v1/traces"]
    sent = ExportTraceServiceRequest.FromString(received[0][1])
    (resource_spans,) = sent.resource_spans
    names = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert names["service.name"] == "tag"
    spans = [span for scope in resource_spans.scope_spans for span in scope.spans]
    assert [span.kind for span in spans] == [Span.SPAN_KIND_SERVER]
    assert "/api/tags" in spans[0].name
