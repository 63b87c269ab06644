"""Tracing with OpenTelemetry (stage 03 on): one click followed through every process.

Off unless configured, and then nothing here is even imported. It is on when
OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: spans go by
OTLP over HTTP to a collector (Jaeger, ...), every other standard OTEL_* variable honoured.
It is on too when WORKSHOP_TRACE_FILE names a file: spans are appended to it as JSON lines,
and `workshop trace` draws them, so a laptop needs no server. Each process reports its
service's name as service.name.

A trace starts at the gateway: only spans of an incoming request (SERVER) or of a taken
task (CONSUMER) may start one, so the background polling of relays, consumers and
heartbeats makes no traces of its own (OTEL_TRACES_SAMPLER overrides this choice).

The context crosses the broker in the message envelope (`Message.trace`): an owner's write
records the context it was made in next to the outbox mark (`outbox_fields`), the relay
publishes the change in a span under it (`producing`), and each consumer applies it in a
span under the publish (`consuming`), so a tag written at the gateway links to search
applying it, through sync.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop import config

if TYPE_CHECKING:  # the message spans are stage 03's on; 01 and 02 trace requests only
    from workshop.platform.messages import Message

TRACE_FILE_ENV = "WORKSHOP_TRACE_FILE"
# The field an owner's document keeps the context of its pending change in.
OUTBOX_TRACE_FIELD = "outbox_trace"
# Health probes and the registry's heartbeats are not clicks: no trace for them.
EXCLUDED_URLS = "healthz,readyz,stats,metrics,static,favicon"
# How often the file exporter writes what it holds (the OTLP exporter keeps its default).
FILE_FLUSH_MILLIS = 500

_active = False
_service = ""
_provider: Any = None  # the SDK's TracerProvider, once set up
_lock = threading.Lock()


def default_trace_file() -> Path:
    """Return where `workshop up --trace` writes spans and `workshop trace` reads them."""
    return config.STATE_DIR / "traces.jsonl"


def trace_file() -> Path | None:
    """Return the JSON-lines file spans go to, if one is configured."""
    path = config.env(TRACE_FILE_ENV)
    return Path(path) if path else None


def otlp_endpoint() -> str | None:
    """Return the collector's address, if one is configured (the standard variables)."""
    return config.env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or config.env(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def enabled() -> bool:
    """Tell whether this process should trace: an exporter is configured, the SDK not off."""
    if (config.env("OTEL_SDK_DISABLED") or "").lower() == "true":
        return False
    return bool(otlp_endpoint() or trace_file())


def active() -> bool:
    """Tell whether `setup` switched tracing on in this process."""
    return _active


def setup(service: str) -> bool:
    """Configure the process's tracer provider and the shared instrumentations once.

    The first call names the process (later ones, e.g. a module imported by another
    service, change nothing). Return whether tracing is on.
    """
    global _active, _service, _provider
    with _lock:
        if _service or not enabled():
            return _active
        _service = service
        from opentelemetry import trace
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        sampler = None if config.env("OTEL_TRACES_SAMPLER") else _request_roots()
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service}), sampler=sampler
        )
        if otlp_endpoint():
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        path = trace_file()
        if path:
            exporter = FileSpanExporter(path)
            provider.add_span_processor(
                BatchSpanProcessor(exporter, schedule_delay_millis=FILE_FLUSH_MILLIS)
            )
        trace.set_tracer_provider(provider)
        _provider = provider
        PymongoInstrumentor().instrument()  # store queries (a MongoDB server, not the emulation)
        RedisInstrumentor().instrument()  # the login counters, a Redis broker, the registry
        _active = True
        return True


@contextlib.contextmanager
def recording(provider: Any) -> Iterator[None]:
    """Trace the envelopes with this provider for a while (tests: the in-memory exporter)."""
    global _active, _provider
    saved = _active, _provider
    _active, _provider = True, provider
    try:
        yield
    finally:
        _active, _provider = saved


def _request_roots() -> Any:
    """Return the sampler: follow the parent's choice; start traces at requests and tasks."""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )
    from opentelemetry.trace import SpanKind

    class RequestRoots(Sampler):
        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:  # fmt: skip
            if kind in (SpanKind.SERVER, SpanKind.CONSUMER):
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
            return SamplingResult(Decision.DROP, None, trace_state)

        def get_description(self) -> str:
            return "RequestRoots"

    return ParentBased(root=RequestRoots())


def excluded_urls(framework: str) -> str:
    """Return the URLs not traced: the instrumentation's own variable, or ours."""
    return (
        config.env(f"OTEL_PYTHON_{framework}_EXCLUDED_URLS")
        or config.env("OTEL_PYTHON_EXCLUDED_URLS")
        or EXCLUDED_URLS
    )


def instrument_flask(app: Any) -> None:
    """Trace a Flask app's requests (stage 03)."""
    if _active:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor.instrument_app(app, excluded_urls=excluded_urls("FLASK"))
        # The request's span starts first, so the app's own hooks (the user lookup that
        # asks the users service, the CSRF check) run inside it, as they do under ASGI. The
        # instrumentor appends its hook and keeps it only as `app._before_request`: no
        # public way to find it, or to ask for it first.
        hooks = app.before_request_funcs[None]
        hooks.insert(0, hooks.pop(hooks.index(app._before_request)))


def instrument_asgi(app: Any) -> None:
    """Trace a Quart app's requests (stage 04), without a span per ASGI send and receive."""
    if _active:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        app.asgi_app = OpenTelemetryMiddleware(
            app.asgi_app, excluded_urls=excluded_urls("ASGI"), exclude_spans=["receive", "send"]
        )


def instrument_requests() -> None:
    """Trace calls made with requests, passing the context on in headers (03's gateway)."""
    if _active:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument()


def instrument_aiohttp() -> None:
    """Trace calls made with aiohttp's client, passing the context on (04's gateway)."""
    if _active:
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

        AioHttpClientInstrumentor().instrument()


def instrument_celery() -> None:
    """Trace Celery: the context travels in a task's headers, the task runs under it."""
    if _active:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument()


def current_ids() -> dict[str, str]:
    """Return the current trace and span ids (for log lines), empty outside a trace."""
    if not _active:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def carrier() -> dict[str, str]:
    """Return the current context as W3C headers (traceparent), empty outside a trace."""
    if not _active:
        return {}
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def outbox_fields() -> dict[str, Any]:
    """Return what an outbox write records besides the mark: the context the change was made
    in (an empty one clears a stale context), or nothing when tracing is off."""
    return {OUTBOX_TRACE_FIELD: carrier()} if _active else {}


def outbox_trace(document: dict[str, Any]) -> dict[str, str] | None:
    """Return the context an owner's pending change was made in, if it was traced."""
    return document.get(OUTBOX_TRACE_FIELD) or None


@contextlib.contextmanager
def producing(messages: Sequence[Message], destination: str) -> Iterator[list[Message]]:
    """Publish traced messages in a span each, under the context their envelope carries.

    Yield the messages to send, each envelope now carrying its publish span's context.
    """
    with _message_spans(messages, destination, "publish") as (sent, _):
        yield sent


@contextlib.contextmanager
def consuming(messages: Sequence[Message], queue: str) -> Iterator[list[Message]]:
    """Apply traced messages in a span each, under their publish span.

    Yield the messages to apply, each envelope carrying its apply span's context (sync
    logs and forwards them under it). While one message is applied, its span is the
    current one, so the store's queries join its trace.
    """
    with _message_spans(messages, queue, "process") as (taken, spans):
        if len(spans) != 1:
            yield taken
            return
        from opentelemetry import trace

        with trace.use_span(spans[0]):
            yield taken


@contextlib.contextmanager
def _message_spans(
    messages: Sequence[Message], destination: str, operation: str
) -> Iterator[tuple[list[Message], list[Any]]]:
    """Open a span per traced message ("publish" or "process"), each under the context its
    envelope carries; yield the envelopes re-stamped with their span's context, and the
    spans. A failure marks every span; all end when the block does."""
    if not _active or not any(m.trace for m in messages):
        yield list(messages), []
        return
    from opentelemetry import propagate, trace

    tracer = _provider.get_tracer(__name__)
    producer = operation == "publish"
    spans, stamped = [], []
    for message in messages:
        if not message.trace:
            stamped.append(message)
            continue
        span = tracer.start_span(
            f"{'publish' if producer else 'apply'} {message.type}",
            context=propagate.extract(message.trace),
            kind=trace.SpanKind.PRODUCER if producer else trace.SpanKind.CONSUMER,
            attributes=_message_attributes(message, destination, operation),
        )
        spans.append(span)
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        stamped.append(dataclasses.replace(message, trace=headers))
    try:
        yield stamped, spans
    except BaseException as error:
        for span in spans:
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR)
        raise
    finally:
        for span in spans:
            span.end()


def _message_attributes(message: Message, destination: str, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": "kombu",
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
        "messaging.message.id": message.id,
        "messaging.message.type": message.type,
    }


class FileSpanExporter:
    """Append finished spans to a file as JSON lines, one write per batch.

    Every process of a stage appends to the same file: a write to a file opened for
    appending lands whole at its end, so the lines of two processes never mix.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(json.dumps(span_record(span), default=str) + "\n" for span in spans)
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, lines.encode())
            finally:
                os.close(descriptor)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to close: each batch opens and closes the file."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def span_record(span: Any) -> dict[str, Any]:
    """Return a finished SDK span as the JSON record `workshop trace` reads."""
    context, parent = span.get_span_context(), span.parent
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name", "?"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }
