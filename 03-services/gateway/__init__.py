"""Stage 03's gateway: the only front door. Pages composed from services, the JSON API
routed to them by path; it holds no data of its own."""

from typing import Any

from flask import Flask

from chassis import metrics
from workshop import logs, tracing, web
from workshop.web.health import health_blueprint


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the gateway: pages, auth pages, the routed API, and readiness of every service."""
    app = web.create_flask(__name__, test_config)
    # A trace per request starts here; the calls to the services carry it on.
    tracing.setup("gateway")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT or WORKSHOP_TRACE_FILE
    tracing.instrument_flask(app)
    tracing.instrument_requests()
    logs.init_flask(app, "gateway")  # X-Request-ID from nginx, else made here; passed on

    from chassis.strangler import routes_file
    from gateway import api, auth, client, pages, strangler
    from gateway.upstreams import SERVICES
    from workshop.platform.instances import about

    client.init_app(app)
    metrics.init_flask(app, "gateway", client.sample_upstreams)  # /metrics
    app.extensions["known_user"] = client.known_user  # users says, once a minute per token
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    checks = {service: (lambda s=service: client.ping(s)) for service in SERVICES}
    if routes_file():  # a migration: say what has moved (`workshop strangler` reads it)
        checks["strangler"] = strangler.state
    app.register_blueprint(health_blueprint(checks, settled=_settled, about=about()))
    return app


def _settled(states: dict[str, dict[str, Any]]) -> bool:
    """Tell whether every message has reached its service (nothing waits in a queue).

    For information only: a backlog is normal traffic, and the gateway stays ready. It is
    not ready (503) while a service is down or still loading its start-up data.
    """
    return all(state.get("ok") and not state.get("backlog") for state in states.values())
