"""The two settings the compose files' observability profile relies on.

docker/<stage>.yaml gives every process OTEL_EXPORTER_OTLP_ENDPOINT, empty unless docker/.env
sets it: empty must mean no tracing. Prometheus scrapes 04's Celery worker from another
container, so the worker's /metrics must listen where WORKSHOP_METRICS_HOST says.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.timing import scaled
from workshop import tracing
from workshop.config import ROOT


@pytest.mark.parametrize(
    "settings",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""},
    ],
    ids=["endpoint", "both"],
)
def test_an_empty_otlp_endpoint_means_tracing_off(settings, monkeypatch):
    monkeypatch.delenv(tracing.TRACE_FILE_ENV, raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert tracing.otlp_endpoint() is None
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")
    assert tracing.enabled()  # and set, it is on


# Runs in a process of its own: 03 and 04 have packages of the same names (ingest, chassis).
WORKER_METRICS = """
import json, sys
sys.path.insert(0, "04-async")
from ingest import tasks
calls = []
tasks.worker_http.serve = lambda host, port, registry: calls.append([port, host])
tasks.serve_http()
print(json.dumps(calls))
"""


@pytest.mark.parametrize(
    ("host", "expected"), [(None, "127.0.0.1"), ("", "127.0.0.1"), ("0.0.0.0", "0.0.0.0")]
)
def test_the_worker_serves_metrics_where_workshop_metrics_host_says(host, expected):
    env = {k: v for k, v in os.environ.items() if k != "WORKSHOP_METRICS_HOST"}
    env.update(PORT="8123", WORKSHOP_STAGE="04-async", SECRET_KEY="x" * 40)
    if host is not None:
        env["WORKSHOP_METRICS_HOST"] = host
    answer = subprocess.run(
        [sys.executable, "-c", WORKER_METRICS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout.splitlines()[-1]) == [[8123, expected]]
