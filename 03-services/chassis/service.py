"""What every stage-03 service shares, so each service's folder holds only its verb.

A service is a small Flask app with: its own database (named after the service), the
contract's error shapes, /healthz and /readyz (store, broker, backlog and, for a
subscriber, bootstrap), a consumer for the message types it subscribes to, and an outbox
relay for the data it owns. Handlers and routes are the service's own; this module only
wires them.

Ready means "answers right": a subscriber that starts empty answers /readyz 503 until the
replay it asked for is applied (its bootstrap). After that a backlog is normal traffic:
/readyz stays 200 and reports how much waits.
"""

import atexit
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from chassis import metrics, strangler
from chassis.messaging.broker import Consumer, Publisher
from chassis.messaging.outbox import Relay, Source
from chassis.registry import Heartbeat, advertise_url, registry_url
from workshop import config, logs, tracing, web
from workshop import db as databases
from workshop.db import Database
from workshop.platform import latency
from workshop.platform.broker import SYNC_QUEUE
from workshop.platform.instances import about
from workshop.platform.messages import CAUGHT_UP, SUBSCRIPTION_DECLARED, Message
from workshop.platform.metrics import Metrics
from workshop.platform.schemas import FIRST, dead_letter_queue
from workshop.web.health import Check, health_blueprint

log = logging.getLogger(__name__)
REDECLARE_SECONDS = 5.0
# The collection where a subscriber keeps how far through sync's log it has applied.
POSITION = "sync_position"

# handler(database, message): applies one message to the service's own store.
Handler = Callable[[Database, Message], None]


@dataclass
class Service:
    """A service's definition: its name, routes, what it takes and what it owns."""

    name: str
    blueprint: Blueprint
    subscribes: dict[str, Handler] = field(default_factory=dict)
    # The versions of each type its handlers read, where more than the first
    # (workshop/platform/schemas): sync hands it each change in one of them, and it refuses
    # others to its dead-letter queue.
    reads: dict[str, tuple[int, ...]] = field(default_factory=dict)
    owns: Callable[[Database], list[Source]] | None = None
    setup: Callable[[Database], None] | None = None
    batch_handler: Callable[[Database, list[Message]], None] | None = None
    # waiting(database): work this service knows waits elsewhere (sync: subscribers that
    # lack changes they were sent), counted in the backlog /readyz reports.
    waiting: Callable[[Database], int] | None = None
    # lag(database): how many changes each subscriber is behind (sync), for /metrics.
    lag: Callable[[Database], dict[str, int]] | None = None
    # More of what /readyz checks, by name: what the service needs besides its store and
    # the broker (the strangler fig's monolith: its calls under way, per verb).
    checks: dict[str, Check] = field(default_factory=dict)
    # What it takes from the monolith while a migration (the strangler fig) has not moved
    # its verb yet: the data it will own, kept as the monolith publishes it.
    follows: dict[str, Handler] = field(default_factory=dict)
    # The old system of a migration (the monolith): its sources say whose verb each is.
    old_system: bool = False


@dataclass
class Runtime:
    """What a running service holds: its store and its messaging workers."""

    database: Database
    publisher: Publisher
    consumer: Consumer | None = None
    relay: Relay | None = None
    heartbeat: Heartbeat | None = None
    declarer: threading.Event | None = None  # set: the declarer stops
    # Set at start when a subscriber's store is empty: it waits for its replay.
    bootstrapping: bool = False
    # The log sequence sync named when it had sent the replay (None: not heard yet).
    caught_up_through: int | None = None
    waiting: Callable[[Database], int] | None = None

    def bootstrapped(self) -> bool:
        """Tell whether the start-up data is in (always, unless we started empty)."""
        if self.bootstrapping and self.caught_up_through is not None and self.consumer:
            # Once in, it stays in: later messages are steady-state backlog.
            self.bootstrapping = self.consumer.applied < self.caught_up_through
        return not self.bootstrapping

    def on_caught_up(self, message: Message) -> None:
        """Note the last change of the replay sync sent us (sync's "caught up" message)."""
        self.caught_up_through = int(message.payload["through"])

    def queued(self) -> int:
        """Return the batches waiting in the service's queue or being applied."""
        if not self.consumer:
            return 0
        return self.publisher.backlog(self.consumer.queue_name) + self.consumer.in_flight

    def backlog(self) -> int:
        """Return the work waiting: batches in the service's queue, unpublished changes, and
        work the service knows waits elsewhere."""
        waiting = self.queued()
        if self.waiting:
            waiting += self.waiting(self.database)
        return waiting + (self.relay.pending() if self.relay else 0)


def get_db() -> Database:
    """Return the running service's own database."""
    return current_app.extensions["service"].database


def create_service(
    service: Service, import_name: str, test_config: dict[str, Any] | None = None
) -> Flask:
    """Create the service's app, open its store, and start its workers."""
    # INSTANCE runs one more copy with its own queue and store (embedded stores can't be
    # shared): sync feeds it like any subscriber, and the registry lists it under the
    # service's name, so the gateway spreads calls over both.
    instance = config.env("INSTANCE")
    queue_name = f"{service.name}-{instance}" if instance else service.name
    app = web.create_flask(import_name, test_config)
    tracing.setup(service.name)  # off unless OTEL_EXPORTER_OTLP_ENDPOINT or WORKSHOP_TRACE_FILE
    tracing.instrument_flask(app)
    logs.init_flask(app, service.name)  # X-Request-ID; JSON log lines if WORKSHOP_LOG_FORMAT
    latency.delay_answers(app, service.name)  # WORKSHOP_LATENCY_MS, off by default
    app.config.setdefault("DATABASE_NAME", queue_name)
    app.config.setdefault("START_WORKERS", True)
    runtime = Runtime(None, Publisher(), waiting=service.waiting)
    app.extensions["service"] = runtime
    app.register_blueprint(service.blueprint)
    service = strangler.following(service)  # in a migration: the monolith's data too
    checks = _checks(runtime, bool(service.subscribes)) | service.checks
    app.register_blueprint(health_blueprint(checks, about=about()))  # + version, started
    app.add_url_rule("/stats", "stats", functools.partial(_stats, runtime, queue_name))
    metrics.init_flask(app, service.name, functools.partial(_sample, service, runtime))
    served_by = f"{queue_name}@{config.env('PORT', '-')}"
    app.after_request(functools.partial(_label, served_by=served_by))
    if service.subscribes or service.batch_handler:
        handlers = {
            kind: functools.partial(_in_context, app, h) for kind, h in service.subscribes.items()
        }
        if service.subscribes:
            handlers[CAUGHT_UP] = runtime.on_caught_up
        batch = service.batch_handler
        batch_handler = functools.partial(_in_context, app, batch) if batch else None
        runtime.consumer = Consumer(queue_name, handlers, batch_handler, reads=service.reads)

    def open_store_and_start() -> None:
        # The blocking client serves every thread: open it at once (04 opens its async one
        # on the loop that serves, when serving starts).
        runtime.database = databases.database(app.config["DATABASE_NAME"])
        if service.setup:
            with app.app_context():
                service.setup(runtime.database)
        if service.owns:
            sources = strangler.owned_by(service, service.owns(runtime.database))
            runtime.relay = Relay(service.name, sources, runtime.publisher)
        if app.config["START_WORKERS"]:
            start_workers(service, runtime)

    open_store_and_start()
    return app


def start_workers(service: Service, runtime: Runtime) -> None:
    """Start the relay and the consumer, tell sync what we take, and join the registry."""
    if runtime.relay:
        runtime.relay.start()
    if runtime.consumer:
        # Ask for a replay only if the store was empty before anything was consumed.
        empty = _empty(runtime.database)
        runtime.bootstrapping = empty and bool(service.subscribes)
        _keep_position(runtime.consumer, runtime.database)
        runtime.consumer.start()
        if service.subscribes:
            declaring = threading.Thread(
                target=declare_periodically,
                args=(runtime.consumer.queue_name, list(service.subscribes), runtime, empty),
                name=f"declarer-{runtime.consumer.queue_name}",
                daemon=True,
            )
            runtime.declarer = threading.Event()  # set: the declarer stops
            declaring.start()
    # Last: an instance that starts empty knows it by now, so it registers only once its
    # replay is in (its first heartbeat came before, and the gateway sent it calls).
    url, address = registry_url(), advertise_url()
    if url and address:
        runtime.heartbeat = Heartbeat(url, service.name, address, ready=runtime.bootstrapped)
        runtime.heartbeat.start()
    atexit.register(stop_workers, runtime)


def declare_periodically(queue_name: str, types: list[str], runtime: Runtime, replay: bool) -> None:
    """Tell sync what we subscribe to at start, and again now and then.

    Declaring again costs little and heals a sync service that restarted without its
    memory (the embedded store): it learns its subscribers back within seconds.
    """
    while not runtime.declarer.is_set():
        try:
            declare_subscription(queue_name, types, runtime, replay)
            replay = False
        except Exception:  # the broker is down: try again next round
            log.warning("could not declare %s to sync", queue_name, exc_info=True)
        runtime.declarer.wait(REDECLARE_SECONDS)


def declare_subscription(queue_name: str, types: list[str], runtime: Runtime, replay: bool) -> None:
    """Ask sync for these message types; `replay` asks for every change so far too.

    Until the replay is applied, each declaration also asks sync to say when it has sent
    it all (`catching_up`): a sync that restarted meanwhile still answers.
    """
    reads = runtime.consumer.reads if runtime.consumer else {}
    payload = {
        "queue": queue_name,
        "types": types,
        "reads": {kind: list(reads.get(kind, (FIRST,))) for kind in types},
        "replay": replay,
        "catching_up": not runtime.bootstrapped(),
    }
    consumer = runtime.consumer
    if consumer and not consumer.in_flight and not runtime.publisher.backlog(queue_name):
        # Idle: everything sync sent has arrived, so sync can compare what we applied with
        # what it sent, and send again what the broker lost.
        payload["applied"] = consumer.position
    version = time.time_ns()  # each declaration is news
    message = Message(SUBSCRIPTION_DECLARED, queue_name, version, payload, queue_name)
    runtime.publisher.publish([message], SYNC_QUEUE)


def _keep_position(consumer: Consumer, database: Database) -> None:
    """Give the consumer the position it had applied through, and keep each new one."""
    found = database[POSITION].find_one({"_id": consumer.queue_name})
    consumer.position = found["seq"] if found else 0

    def save(position: int) -> None:
        further = {"$max": {"seq": position}}  # never back
        database[POSITION].update_one({"_id": consumer.queue_name}, further, upsert=True)

    consumer.on_position = save


def _empty(database: Database) -> bool:
    """Tell whether a store holds no documents (a new service, or a new version of one)."""
    for name in database.list_collection_names():
        if database[name].estimated_document_count():
            return False
    return True


def stop_workers(runtime: Runtime) -> None:
    """Stop consuming and relaying (an unacknowledged batch goes back to the queue)."""
    if runtime.heartbeat:
        runtime.heartbeat.stop()
    if runtime.declarer:
        runtime.declarer.set()
    if runtime.consumer:
        runtime.consumer.stop()
    if runtime.relay:
        runtime.relay.stop()
    runtime.publisher.close()


def _in_context(app: Flask, handler: Callable, payload: Any) -> None:
    with app.app_context():
        handler(app.extensions["service"].database, payload)


def _checks(runtime: Runtime, subscriber: bool) -> dict[str, Check]:
    def store() -> dict[str, Any]:
        return databases.ping(runtime.database)

    def backlog() -> dict[str, Any]:
        # A backlog is reported, never "not ready": writes in flight are normal traffic.
        try:
            return {"ok": True, "waiting": runtime.backlog()}
        except Exception as error:  # the broker is down: the ping check says so too
            return {"ok": False, "error": type(error).__name__}

    def bootstrap() -> dict[str, Any]:
        if runtime.bootstrapped():
            return {"ok": True}
        applied = runtime.consumer.applied if runtime.consumer else 0
        return {"ok": False, "replayed": applied, "through": runtime.caught_up_through}

    def dead_letters() -> dict[str, Any]:
        # Refused messages are for a person to read, never "not ready": the rest flows on.
        consumer = runtime.consumer
        refused = sum(dict(consumer.refused).values()) if consumer else 0  # a copy: it grows
        answer: dict[str, Any] = {"ok": True, "refused": refused}
        if consumer and refused:
            answer["queue"] = dead_letter_queue(consumer.queue_name)
            answer["last"] = consumer.last_refusal
        return answer

    checks = {"mongodb": store, "broker": runtime.publisher.ping, "backlog": backlog,
              "dead_letters": dead_letters}  # fmt: skip
    if subscriber:
        checks["bootstrap"] = bootstrap
    return checks


def _sample(service: Service, runtime: Runtime, metrics: Metrics) -> None:
    """Set the gauges /metrics shows from what /readyz computes."""
    waiting = runtime.queued()
    if runtime.waiting:
        waiting += runtime.waiting(runtime.database)
    metrics.set_backlog(waiting, runtime.relay.pending() if runtime.relay else None)
    if service.lag:
        metrics.set_subscriber_lag(service.lag(runtime.database))
    if runtime.consumer:
        # Copies: the consumer's thread adds to them meanwhile.
        metrics.set_messages(dict(runtime.consumer.read), dict(runtime.consumer.refused))


def _stats(runtime: Runtime, name: str) -> Any:
    """Count the documents in each of the service's collections (to compare stores)."""
    counts = {}
    for collection in sorted(runtime.database.list_collection_names()):
        counts[collection] = runtime.database[collection].count_documents({})
    return jsonify({"service": name, "collections": counts})


def _label(response: Any, served_by: str) -> Any:
    """Say which instance answered (the gateway passes it on: watch the round robin)."""
    response.headers["X-Served-By"] = served_by
    return response
