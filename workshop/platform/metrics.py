"""Prometheus metrics for stages 03 and 04: what every process's /metrics shows.

Each app gets its own registry (not prometheus_client's global one), so an app factory run
twice in one process (the tests do) registers nothing twice. Requests are counted per route
(the URL rule, `/api/posts/<post_id>`, never the raw path: label values stay few) and
status class; the gauges (backlog, outbox, sync's lag, breakers, the gateway's instances)
are set when scraped, from what /readyz computes, so they cost nothing between scrapes. The
chassis of each stage hooks this into Flask or Quart; the Celery worker serves its own
(04-async/ingest/tasks.py).
"""

from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)

# The label a request that matched no route gets (a 404): one value, whatever the path.
UNMATCHED = "unmatched"
# purgatory's states, in the order they name them.
BREAKER_STATES = ["closed", "half-opened", "opened"]
# HTTP's methods; a client may send any word, which would make a new series each.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """One process's metrics: its registry, the request metrics, and gauges made on demand."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "Requests answered, per route, method and status class.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request, per route and method.",
            ["route", "method"],
            registry=self.registry,
        )
        self._gauges: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}
        self._upstream_errors: Counter | None = None
        self._breakers: Enum | None = None

    def observe(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its time."""
        route = route or UNMATCHED
        method = method if method in KNOWN_METHODS else "other"
        self.requests.labels(route, method, f"{status // 100}xx").inc()
        self.latency.labels(route, method).observe(seconds)

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        """Return the gauge of that name, made the first time it is asked for."""
        if name not in self._gauges:
            self._gauges[name] = Gauge(name, documentation, labels, registry=self.registry)
        return self._gauges[name]

    def set_backlog(self, waiting: int, outbox: int | None) -> None:
        """Set the service's backlog and, for an owner of data, its outbox's pending count.

        The backlog is /readyz's less the outbox: batches in the service's queue or being
        applied, and work it knows waits elsewhere (sync: subscribers that lack changes they
        were sent; 04's ingest: tasks its worker has not finished).
        """
        documentation = "Work waiting: batches queued or being applied, and work sent on."
        self.gauge("service_backlog", documentation).set(waiting)
        if outbox is not None:
            documentation = "Changes written to the service's store, not yet published."
            self.gauge("service_outbox_pending", documentation).set(outbox)

    def set_subscriber_lag(self, lag: Mapping[str, int]) -> None:
        """Set how many changes each subscriber's checkpoint is behind sync's log head."""
        gauge = self.gauge(
            "sync_subscriber_lag", "Changes in sync's log past a subscriber's checkpoint.",
            ("subscriber",),
        )  # fmt: skip
        gauge.clear()  # a subscriber that is gone is gone from the metrics too
        for subscriber, behind in lag.items():
            gauge.labels(subscriber).set(behind)

    def set_messages(
        self, read: Mapping[tuple[str, int], int], refused: Mapping[tuple[str, int], int]
    ) -> None:
        """Set how many messages the consumer took and refused (to its dead-letter queue)
        since the process started, per type and schema version."""
        for name, counts, documentation in (
            ("consumer_messages_read", read, "Messages a consumer took, per type and version."),
            ("consumer_messages_dead_lettered", refused,
             "Messages a consumer refused to its dead-letter queue, per type and version."),
        ):  # fmt: skip
            gauge = self.gauge(name, documentation, ("type", "version"))
            for (message_type, version), count in counts.items():
                gauge.labels(message_type, str(version)).set(count)

    def upstream_error(self, service: str) -> None:
        """Count a call from the gateway that a service did not answer."""
        if self._upstream_errors is None:
            self._upstream_errors = Counter(
                "gateway_upstream_errors",
                "Calls to a service that got no usable answer (down, 5xx, open circuit).",
                ["service"],
                registry=self.registry,
            )
        self._upstream_errors.labels(service).inc()

    def set_breakers(self, states: Mapping[str, str]) -> None:
        """Set each upstream's circuit breaker state (purgatory's name for it)."""
        if self._breakers is None:
            self._breakers = Enum(
                "gateway_circuit_breaker",
                "State of the gateway's circuit breaker for each service.",
                ["service"],
                states=BREAKER_STATES,
                registry=self.registry,
            )
        for service, state in states.items():
            self._breakers.labels(service).state(state)

    def set_instances(self, counts: Mapping[str, int]) -> None:
        """Set how many instances of each service the gateway calls: the registry's live
        ones (an instance that stopped drops out with its entry), else its one address."""
        gauge = self.gauge(
            "gateway_instances", "Instances of each service the gateway sends calls to.",
            ("service",),
        )  # fmt: skip
        for service, count in counts.items():
            gauge.labels(service).set(count)

    def task_outcome(self, task: str, outcome: str) -> None:
        """Count a Celery task that succeeded, failed or is retried."""
        counter = self._counters.get("celery_tasks")
        if counter is None:
            counter = self._counters["celery_tasks"] = Counter(
                "celery_tasks",
                "Celery tasks the worker ended, per task name and outcome.",
                ["task", "outcome"],
                registry=self.registry,
            )
        counter.labels(task, outcome).inc()

    def render(self) -> tuple[bytes, str]:
        """Return the exposition (Prometheus' text format) and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def subscriber_lag(head: int, subscribers: list[Mapping]) -> dict[str, int]:
    """Return how far each subscriber's checkpoint is behind the log's head."""
    return {s["queue"]: max(0, head - s["checkpoint"]) for s in subscribers}
