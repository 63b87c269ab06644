"""/metrics on a Quart app (stage 04): Prometheus' text format, from workshop/platform/metrics.py.

Every request is counted and timed under its URL rule; `sample` sets the gauges (backlog,
outbox, breakers...) just before each scrape, so they say how things stand now.
"""

import time
from collections.abc import Awaitable, Callable

from quart import Quart, Response, g, request

from workshop.platform.metrics import Metrics

# sample(metrics): sets the process's gauges from its current state.
Sample = Callable[[Metrics], Awaitable[None]]


def init_quart(app: Quart, service: str, sample: Sample | None = None) -> Metrics:
    """Count and time the app's requests per route, and serve /metrics."""
    metrics = Metrics(service)
    app.extensions["metrics"] = metrics

    async def start() -> None:
        g.metrics_started = time.perf_counter()

    async def end(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule else None
            seconds = time.perf_counter() - started
            metrics.observe(route, request.method, response.status_code, seconds)
        return response

    async def scrape() -> Response:
        if sample:
            await sample(metrics)
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    app.before_request_funcs.setdefault(None, []).insert(0, start)  # before any refusal
    app.after_request(end)
    app.add_url_rule("/metrics", "metrics", scrape)
    return metrics
