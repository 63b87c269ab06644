"""Stage 04's gateway: the only front door. Pages composed from services, the JSON API
routed to them by path; it holds no data of its own.

Async: one event loop keeps every call to the services in flight at once; a page's
services are asked at the same time, and so are the services' readinesses.
"""

from typing import Any

from quart import Quart

from chassis import metrics, web
from chassis.health import health_blueprint
from workshop import logs, tracing


def create_app(test_config: dict[str, Any] | None = None) -> Quart:
    """Create the gateway: pages, auth pages, the routed API, and readiness of every service."""
    app = web.create_quart(__name__, test_config)
    # A trace per request starts here; the calls to the services carry it on.
    tracing.setup("gateway")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT or WORKSHOP_TRACE_FILE
    tracing.instrument_asgi(app)
    tracing.instrument_aiohttp()
    logs.init_quart(app, "gateway")  # X-Request-ID from nginx, else made here; passed on

    from gateway import api, auth, client, pages
    from gateway.upstreams import SERVICES
    from workshop.platform.instances import about

    client.init_app(app)
    metrics.init_quart(app, "gateway", client.sample_upstreams)  # /metrics
    app.extensions["known_user"] = client.known_user  # users says, once a minute per token
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    checks = {service: (lambda s=service: client.ping(s)) for service in SERVICES}
    app.register_blueprint(health_blueprint(checks, settled=_settled, about=about()))
    return app


def _settled(states: dict[str, dict[str, Any]]) -> bool:
    """Tell whether every message has reached its service (nothing waits in a queue).

    For information only: a backlog is normal traffic, and the gateway stays ready. It is
    not ready (503) while a service is down or still loading its start-up data.
    """
    return all(state.get("ok") and not state.get("backlog") for state in states.values())
