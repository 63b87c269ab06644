"""Structured logs (stage 03 on): a request id through every process, and JSON log lines.

Every request gets an id: the X-Request-ID it came with (nginx sets one), else one made at
the first process that sees it (the gateway). The gateway passes it on to each service it
calls, and every process answers with it, so one id names a click everywhere.

With WORKSHOP_LOG_FORMAT=json each process writes its log records, and one line per request
it served, as JSON lines carrying the service, the request id and, when tracing is on
(workshop/tracing.py), the trace and span ids: the lines of one click can be picked out of
all the processes' output. Otherwise logging stays as Python's default (warnings, plain).
"""

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from workshop import config, tracing

REQUEST_ID_HEADER = "X-Request-ID"
# An id passed in is kept only if it is short and plain: it is echoed and logged.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_started: contextvars.ContextVar[float] = contextvars.ContextVar("request_started", default=0.0)
_service = "-"
requests_log = logging.getLogger("workshop.requests")


def json_lines() -> bool:
    """Tell whether this process writes its logs as JSON lines (WORKSHOP_LOG_FORMAT=json)."""
    return (config.env("WORKSHOP_LOG_FORMAT") or "").lower() == "json"


def setup(service: str) -> None:
    """Name the process's service in its log lines; with JSON logs on, write them to stderr."""
    global _service
    if _service != "-":
        return
    _service = service
    if json_lines():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)


def request_id() -> str | None:
    """Return the id of the request being served, if any."""
    return _request_id.get()


def begin_request(given: str | None) -> str:
    """Start a request: keep the id it came with (if plain), else make one; return it."""
    rid = given if given and VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    _request_id.set(rid)
    _started.set(time.perf_counter())
    return rid


def end_request(method: str, path: str, status: int) -> None:
    """Log the request served (one line, at INFO: written only with JSON logs on)."""
    if requests_log.isEnabledFor(logging.INFO):
        millis = (time.perf_counter() - _started.get()) * 1000
        requests_log.info(
            "%s %s %s %.1f ms", method, path, status, millis,
            extra={"http": {"method": method, "path": path, "status": status,
                            "duration_ms": round(millis, 1)}},
        )  # fmt: skip


def init_flask(app: Any, service: str) -> None:
    """Give a Flask app (stage 03) request ids and its request log lines."""
    from flask import request

    setup(service)

    def begin() -> None:
        begin_request(request.headers.get(REQUEST_ID_HEADER))

    def end(response: Any) -> Any:
        response.headers[REQUEST_ID_HEADER] = request_id() or ""
        end_request(request.method, request.path, response.status_code)
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, begin)  # before any refusal
    app.after_request(end)


def init_quart(app: Any, service: str) -> None:
    """Give a Quart app (stage 04) request ids and its request log lines."""
    from quart import request

    setup(service)

    async def begin() -> None:
        begin_request(request.headers.get(REQUEST_ID_HEADER))

    async def end(response: Any) -> Any:
        response.headers[REQUEST_ID_HEADER] = request_id() or ""
        end_request(request.method, request.path, response.status_code)
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, begin)  # before any refusal
    app.after_request(end)


def passed_on() -> dict[str, str]:
    """Return the headers that carry the request id to a service the gateway calls."""
    rid = request_id()
    return {REQUEST_ID_HEADER: rid} if rid else {}


# The task header that carries the request id from the process that sends a Celery task
# to the worker that runs it (stage 04), as X-Request-ID carries it between services.
TASK_HEADER = "x_request_id"


def init_celery_sender() -> None:
    """Have the tasks this process sends (04's ingest service) carry the request's id."""
    from celery import signals

    signals.before_task_publish.connect(_stamp_task, weak=False)


def init_celery_worker(service: str) -> None:
    """Give a Celery process (04's worker, beat) its log lines: JSON ones when asked for,
    else Celery's own; and run each task under the id of the request that sent it."""
    from celery import signals

    if json_lines():
        # With a receiver for setup_logging, Celery leaves logging to it: its own lines
        # ("Task ... received", "succeeded") become JSON lines too.
        signals.setup_logging.connect(lambda **_: setup(service), weak=False)
    signals.task_prerun.connect(_begin_task, weak=False)
    signals.task_postrun.connect(_end_task, weak=False)


def _stamp_task(headers: dict[str, Any] | None = None, **_: Any) -> None:
    rid = request_id()
    if rid and headers is not None:
        headers.setdefault(TASK_HEADER, rid)


def _begin_task(task: Any = None, **_: Any) -> None:
    given = getattr(task.request, TASK_HEADER, None) if task is not None else None
    _request_id.set(given if isinstance(given, str) and VALID_REQUEST_ID.fullmatch(given) else None)


def _end_task(**_: Any) -> None:
    _request_id.set(None)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, service, logger, message, and the ids."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": _service,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id.get(),
            **tracing.current_ids(),
        }
        if hasattr(record, "http"):
            line["http"] = record.http
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
