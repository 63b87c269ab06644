"""What the Celery worker serves over HTTP: /healthz (alive) and /metrics.

The worker is no web app, but it answers on its PORT like every process of the stage:
Prometheus scrapes its /metrics, and the ingest service asks its /healthz for its own
/readyz (a worker that was killed or stopped leaves every job pending). The server runs
in threads of its own, so it answers while a task runs; a process stopped with SIGSTOP
answers nothing, which is the point.
"""

import json
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def worker_app(registry: CollectorRegistry) -> WsgiApp:
    """Return the WSGI app: /healthz answers 200 at once, any other path the metrics."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"status": "ok"}).encode()]
        return metrics_app(environ, start_response)

    return app


def serve(host: str, port: int, registry: CollectorRegistry) -> None:
    """Serve the app on host:port from a daemon thread (one more thread per request)."""
    server = make_server(host, port, worker_app(registry), _ThreadingServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a request in flight never holds the worker's exit


class _QuietHandler(WSGIRequestHandler):
    """No access log: Prometheus and /readyz ask every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass
