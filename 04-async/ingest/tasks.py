"""The ingest worker: Celery tasks that store posts, and the master post data they own.

`POST /api/ingest` answers 202 at once; the work happens here, in the worker process
(`celery -A ingest.tasks worker`, a Procfile line). With the embedded store each process
has its own data, so the worker owns ingest's posts: it stores them, seeds the sample at
start, and runs the outbox relay that publishes them to sync. The ingest web process only
checks requests, enqueues tasks and reports jobs (service.py).

Celery tasks are plain functions; the 04 store is async. The worker runs one event loop in
a thread of its own (`Bridge`) and each task hands its coroutine to it: the store and the
relay live on that loop, as they would in a Quart service.

Celery beat (`celery -A ingest.tasks beat`, a Procfile line) sends one task on a
schedule: `retag_topics`, every WORKSHOP_RETAG_SECONDS (an hour by default), which gives
the stored posts the topics the current vocabulary assigns and publishes those that changed.

The worker is the stage's only Celery worker, so it also runs an operator's task that is
not ingest's: `sync.replay`, which asks the sync service to re-send a subscriber its log
and waits for sync's answer (`workshop sync replay SERVICE` queues it and follows it).

Tasks are idempotent by key (a post is stored by its reddit id: storing a batch twice
changes nothing), acknowledged late (a worker killed mid-task leaves the task in the queue)
and only once their posts are published (the embedded store dies with the worker), taken
one at a time, and retried with backoff and jitter when the store or broker fails.
"""

import asyncio
import logging
import queue as queues
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any

from celery import Celery, signals

from chassis.messaging.broker import Publisher
from chassis.messaging.outbox import Relay
from ingest import retag, store, worker_http
from workshop import config, ingestion, logs, tracing
from workshop import db as databases
from workshop.db import AsyncDatabase
from workshop.documents import Upserted
from workshop.platform import broker
from workshop.platform.messages import REPLAY_REQUESTED, Message
from workshop.platform.metrics import Metrics

log = logging.getLogger(__name__)

# For the Celery processes (`celery -A ingest.tasks`, worker and beat; registered wherever
# this module is imported, and only Celery's signals fire them): their log lines, JSON ones
# with WORKSHOP_LOG_FORMAT=json, each task's under the request id that sent it.
logs.init_celery_worker("ingest-beat" if "beat" in sys.argv else "ingest-worker")


@signals.worker_init.connect
def _trace_worker(**_: Any) -> None:
    """In the Celery worker: each task joins the trace of the request that sent it."""
    tracing.setup("ingest-worker")
    tracing.instrument_celery()


QUEUE = "ingest-jobs"
RETAG_SECONDS = 3600  # how often beat re-tags the posts, unless WORKSHOP_RETAG_SECONDS says
# Uploads reach the worker in batches of this many posts, never as one large message.
BATCH_SIZE = 500
REPLY_SECONDS = 120  # how long a replay task waits for sync's answer
# Where the worker's /metrics listens, if not on 127.0.0.1 (compose: 0.0.0.0).
METRICS_HOST_ENV = "WORKSHOP_METRICS_HOST"


def celery_settings() -> dict[str, Any]:
    """Return Celery's settings: the broker and result store from the environment."""
    url = broker.broker_url()
    run_dir = config.data_dir()  # Celery's queue, results and beat's clock: kept with the data
    settings: dict[str, Any] = {
        "broker_url": url,
        "task_default_queue": QUEUE,
        "task_acks_late": True,  # acknowledged after the task: a killed worker loses nothing
        "task_reject_on_worker_lost": True,
        # One task at a time per worker: it reserves concurrency x multiplier tasks, and the
        # solo pool's concurrency would default to the number of CPUs.
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        "task_track_started": True,  # a job says "running" once a worker has it
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # Celery beat: what it sends when, and where it remembers when it last sent it.
        "beat_schedule": {"retag-topics": {"task": "ingest.retag_topics", "schedule": retag_seconds()}},
        "beat_schedule_filename": str(run_dir / "celerybeat-schedule"),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    if url.startswith("filesystem"):
        # No broker server: messages are files, as for the services' messages
        # (workshop.platform.broker).
        folder = run_dir / "celery"
        (folder / "results").mkdir(parents=True, exist_ok=True)
        settings.update(
            broker_transport="workshop.platform.broker:Transport",
            broker_transport_options=broker.filesystem_options(str(folder / "queue")),
            result_backend=f"file://{folder / 'results'}",
            worker_enable_remote_control=False,  # needs a broadcast exchange files lack
            beat_enable_remote_control=False,
        )
        (folder / "queue").mkdir(parents=True, exist_ok=True)
    else:
        settings["result_backend"] = config.env("CELERY_RESULT_BACKEND") or (
            url if url.startswith("redis") else f"file://{run_dir / 'celery-results'}"
        )
        if settings["result_backend"].startswith("file://"):
            (run_dir / "celery-results").mkdir(parents=True, exist_ok=True)
        # Beat answers `celery inspect ping` too (celerybeat@host), while its clock ticks:
        # the containers' health check of the beat process.
        settings["beat_enable_remote_control"] = True
        if url.startswith("redis"):
            # An unacknowledged task comes back this long after its worker died...
            visibility = int(config.env("CELERY_VISIBILITY_TIMEOUT", "60") or 60)
            settings["broker_transport_options"] = {
                "visibility_timeout": visibility,
                # ...as a worker looks for such tasks every few seconds (kombu's own
                # default looks only every 100 s).
                "unacked_restore_interval": max(1, min(10, visibility // 4)),
                "unacked_restore_throttle": 1,
            }
    return settings


def retag_seconds() -> float:
    """Return how often beat re-tags the posts: WORKSHOP_RETAG_SECONDS, or an hour."""
    return float(config.env("WORKSHOP_RETAG_SECONDS") or RETAG_SECONDS)


app = Celery("ingest")
app.conf.update(celery_settings())


class Bridge:
    """One event loop in a thread, for the async store and relay the tasks use."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="store-loop")
        self._thread.daemon = True
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the loop and wait for its answer."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


class Owner:
    """What the worker owns: the ingest database and the relay publishing its posts."""

    def __init__(self) -> None:
        self.bridge = Bridge()
        self.database: AsyncDatabase = None
        self.relay: Relay | None = None

    async def open(self) -> None:
        self.database = databases.async_database("ingest")
        await store.setup(self.database)  # seeds the sample on an empty embedded store
        self.relay = Relay("ingest", store.outbox(self.database), Publisher())
        await self.relay.start()

    async def store(self, posts: list[dict[str, Any]], batch: str) -> Upserted:
        """Store posts as `batch` (a task's own name: a retry counts exactly), and return
        once the relay has published their changes.

        The embedded store lives in this process: a change still waiting in its outbox dies
        with a killed worker. Flushing here means a task is acknowledged (late) only once its
        posts are in the broker, on their way to sync; a redelivered task stores them again.
        """
        stored = await store.upsert_posts(posts, self.database, batch)
        await self._publish([post["id"] for post in posts])
        return stored

    async def retag(self) -> tuple[int, list[str]]:
        """Re-tag the stored posts; return once the changed ones are published."""
        checked, retagged = await retag.retag_topics(self.database)
        await self._publish(retagged)
        return checked, retagged

    async def _publish(self, post_ids: list[str]) -> None:
        assert self.relay is not None
        try:
            await self.relay.flush(post_ids)
        except Exception as error:  # the broker is down or refuses: stored, not yet published
            raise NotPublished(f"the posts are stored but not yet published: {error}") from error

    async def close(self) -> None:
        if self.relay:
            await self.relay.stop()
            self.relay.publisher.close()
        await databases.close_async_clients()


class NotPublished(ConnectionError):
    """A task's posts are stored but the broker has not taken their changes: retry the task."""


_owner: Owner | None = None


def owner() -> Owner:
    """Return the worker's owner of the ingest data, opening it on first use."""
    global _owner
    if _owner is None:
        _owner = Owner()
        _owner.bridge.run(_owner.open())
    return _owner


@signals.worker_ready.connect
def _open_at_start(**_: Any) -> None:
    owner()  # seed and start relaying before the first task, not with it
    serve_http()


# The worker's own metrics (it serves no app): its tasks' outcomes and its queue's length.
metrics = Metrics("worker")


def serve_http() -> None:
    """Serve /healthz and /metrics on the worker's PORT (the Procfile gives every process
    one), on 127.0.0.1 as every process listens, or where WORKSHOP_METRICS_HOST says (a
    container's 0.0.0.0, so that Prometheus and ingest in other containers can ask it)."""
    port = config.env("PORT")
    if not port:
        return
    documentation = "Tasks waiting in the worker's queue (taken but unfinished ones not counted)."
    metrics.gauge("celery_queue_length", documentation).set_function(queue_length)
    try:
        worker_http.serve(metrics_host(), int(port), metrics.registry)
    except OSError:  # a second worker started by hand on the same PORT: the first serves them
        log.warning("/healthz and /metrics not served: port %s is taken", port)


def metrics_host() -> str:
    """Return the address the worker's /metrics listens on."""
    return config.env(METRICS_HOST_ENV) or "127.0.0.1"


def queue_length() -> int:
    """Return how many tasks wait in the queue (0 while the broker cannot say)."""
    try:
        with app.connection_for_read() as connection:
            return connection.default_channel.queue_declare(QUEUE, passive=True).message_count
    except Exception:  # the broker is down or the queue not made yet: nothing to count
        return 0


@signals.task_success.connect
def _count_success(sender: Any = None, **_: Any) -> None:
    metrics.task_outcome(sender.name, "succeeded")


@signals.task_failure.connect
def _count_failure(sender: Any = None, **_: Any) -> None:
    metrics.task_outcome(sender.name, "failed")


@signals.task_retry.connect
def _count_retry(sender: Any = None, **_: Any) -> None:
    metrics.task_outcome(sender.name, "retried")


@signals.worker_shutting_down.connect
def _close_at_stop(**_: Any) -> None:
    if _owner is not None:
        _owner.bridge.run(_owner.close())


TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (ConnectionError, OSError, TimeoutError),
    "retry_backoff": True,  # 1 s, 2 s, 4 s, ...
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 5,
}


@app.task(name="ingest.store_posts", bind=True, **TASK_OPTIONS)
def store_posts(self: Any, job_id: str, posts: list[dict[str, Any]]) -> dict[str, int]:
    """Store one batch of an upload; return what it did to each post (new, updated, ...),
    the same however often the task runs (a worker killed after storing, a retry)."""
    current = owner()
    stored = current.bridge.run(current.store(posts, self.request.id))
    log.info("job %s: stored %d posts", job_id, stored.total)
    return {"new": stored.new, "updated": stored.updated, "unchanged": stored.unchanged}


@app.task(name="ingest.collect_and_store", **TASK_OPTIONS)
def collect_and_store(job_id: str, source: str, subreddit: str, limit: int) -> dict[str, int]:
    """Load the sample or fetch from reddit, here in the worker, and store it in batches."""
    request = ingestion.IngestRequest(source, subreddit=subreddit, limit=limit)
    outcome = ingestion.run(request, lambda posts: _store_in_batches(job_id, posts))
    if outcome.error:
        raise IngestFailed(outcome.error)
    stored = outcome.stored
    counts = {"new": stored.new, "updated": stored.updated, "unchanged": stored.unchanged}
    return {**counts, "rejected": outcome.rejected}


@app.task(name="ingest.retag_topics", **TASK_OPTIONS)
def retag_topics() -> dict[str, int]:
    """Give the stored posts the topics the current vocabulary assigns (beat sends it)."""
    current = owner()
    checked, retagged = current.bridge.run(current.retag())
    log.info("re-tagged %d of %d posts", len(retagged), checked)
    return {"checked": checked, "retagged": len(retagged)}


@app.task(name="sync.replay", bind=True, **TASK_OPTIONS)
def replay(self: Any, subscriber: str) -> dict[str, Any]:
    """Have sync re-send a subscriber every change from the start; return what sync sent.

    The replay is sync's work (its log, its lock, its checkpoints: no other process may
    touch them), so the task only asks, through the broker, like any message to sync: a
    "replay.requested" naming a queue of this task's own, where sync answers "replay.done"
    once it has sent everything. The task's state follows the replay: started while sync
    re-sends, done with the count. Run twice, a replay re-sends twice: harmless, as every
    subscriber applies a change at most once.
    """
    reply_to = f"replay-{self.request.id}"
    ask = Message(REPLAY_REQUESTED, subscriber, time.time_ns(),
                  {"queue": subscriber, "reply_to": reply_to}, "worker")  # fmt: skip
    with broker.connect() as connection:
        replies = connection.SimpleQueue(broker.queue(reply_to))  # there before sync answers
        try:
            producer = connection.Producer(serializer="json")
            sync = broker.queue(broker.SYNC_QUEUE)
            producer.publish({"messages": [ask.to_dict()]}, exchange="", routing_key=sync.name,
                             declare=[sync], delivery_mode=2)  # fmt: skip
            try:
                reply = replies.get(block=True, timeout=REPLY_SECONDS)
            except queues.Empty:
                raise ReplayNotAnswered(
                    f"sync did not answer in {REPLY_SECONDS} s (it replays when it is back)"
                ) from None
            reply.ack()
            replies.queue.delete()
        finally:
            replies.close()
    (answer,) = [Message.from_dict(m).payload for m in reply.payload["messages"]]
    if answer["sent"] is None:
        raise ReplayRefused(f"sync has no subscriber {subscriber!r}")
    log.info("replay: sync sent %d changes to %s", answer["sent"], subscriber)
    return answer


class ReplayNotAnswered(RuntimeError):
    """Sync did not answer a replay in time (it is down or busy): not retried."""


class ReplayRefused(RuntimeError):
    """Sync knows no such subscriber: not retried."""


class IngestFailed(RuntimeError):
    """A job's source could not be read (reddit unreachable, a bad listing): not retried."""


def _store_in_batches(job_id: str, posts: list[dict[str, Any]]) -> Upserted:
    current, batches = owner(), []
    for start in range(0, len(posts), BATCH_SIZE):
        batch = posts[start : start + BATCH_SIZE]
        batches.append(current.bridge.run(current.store(batch, f"{job_id}-{start}")))
    log.info("job %s: stored %d posts", job_id, sum(b.total for b in batches))
    return Upserted(
        new=sum(b.new for b in batches),
        updated=sum(b.updated for b in batches),
        unchanged=sum(b.unchanged for b in batches),
    )


def task_states(task_ids: list[str]) -> list[tuple[str, Any]]:
    """Return each task's (state, result) from the result store (the web process asks)."""
    states = []
    for task_id in task_ids:
        result = app.AsyncResult(task_id)
        states.append((result.state, result.result))
    return states
