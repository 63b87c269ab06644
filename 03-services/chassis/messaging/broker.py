"""The broker, from threads: publish to and consume from durable named queues, one per service.

Publishing is to a queue by name; the sync service decides which services get which
message types. The connection and the queues are workshop.platform.broker's (shared with 04).
"""

import collections
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

import kombu

from workshop import tracing
from workshop.platform.broker import broker_url, check_answers, connect, queue, safe_url, waiting_in
from workshop.platform.messages import InvalidMessage, Message
from workshop.platform.schemas import dead_letter_queue

log = logging.getLogger(__name__)


class Publisher:
    """Send messages to named queues; thread-safe, reconnecting on failure."""

    def __init__(self) -> None:
        self._connection = connect()
        self._lock = threading.Lock()

    def publish(self, messages: list[Message], queue_name: str, after: int | None = None) -> None:
        """Send messages to a queue as one batch, retrying the connection briefly.

        Each envelope stays whole inside the batch; batching only saves trips when a
        whole dataset moves (a bootstrap, a replay). `after` (sync's deliveries): the log
        sequence of the last change sent to this queue before this batch, so a subscriber
        can tell when a batch went missing.
        """
        if messages:
            with tracing.producing(messages, queue_name) as sent:  # a span each, when traced
                self._publish(sent, queue_name, after)

    def _publish(self, messages: list[Message], queue_name: str, after: int | None) -> None:
        body: dict[str, Any] = {"messages": [message.to_dict() for message in messages]}
        if after is not None:
            body["after"] = after
        with self._lock:
            producer = self._connection.Producer(serializer="json")
            publish = self._connection.ensure(producer, producer.publish, max_retries=3)
            publish(body, exchange="", routing_key=queue_name,
                    declare=[queue(queue_name)], delivery_mode=2)  # fmt: skip

    def backlog(self, queue_name: str) -> int:
        """Return how many batches wait in a queue."""
        return waiting_in(queue_name)

    def ping(self) -> dict[str, Any]:
        """Tell whether the broker answers (for /readyz)."""
        try:
            check_answers()
        except Exception as error:  # any failure: not ready, and say which
            return {"ok": False, "url": safe_url(broker_url()), "error": type(error).__name__}
        return {"ok": True, "url": safe_url(broker_url())}

    def close(self) -> None:
        self._connection.release()


Handler = Callable[[Message], None]


class Consumer:
    """Consume a service's queue in a thread, calling a handler per message type.

    A message is acknowledged only after its handler returns: a crash means redelivery
    (at-least-once), so handlers must be idempotent. A handler that raises puts the
    message back for another try.

    `reads` says which versions of each type the handlers read (a type not named: its
    first version). A message it must handle in another version, or whose payload breaks
    its schema, goes to the queue's dead-letter queue with the reason, for a person to
    look at (/readyz and /metrics count them); the rest of its batch is applied.
    """

    def __init__(
        self,
        queue_name: str,
        handlers: dict[str, Handler] | None = None,
        batch_handler: Callable[[list[Message]], None] | None = None,
        reads: Mapping[str, Collection[int]] | None = None,
    ) -> None:
        self.queue_name = queue_name
        self.handlers = handlers or {}
        self.batch_handler = batch_handler
        self.reads = reads or {}
        self.read: collections.Counter[tuple[str, int]] = collections.Counter()  # taken
        self.refused: collections.Counter[tuple[str, int]] = collections.Counter()
        self.last_refusal: str | None = None
        self._connection: kombu.Connection | None = None  # the consuming one, in its thread
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            name=f"consumer-{queue_name}",
            daemon=True,
        )
        self.handled = 0
        self.in_flight = 0  # messages taken from the queue and not yet acknowledged
        self.applied = 0  # the highest log sequence among the messages handled so far
        # The log sequence through which every change sent to this queue has been applied:
        # it moves only when a batch follows on (its `after` is at most this), so a batch
        # the broker lost leaves it behind, and sync sends from there again.
        self.position = 0
        self.on_position: Callable[[int], None] | None = None  # keeps it (the service's store)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with connect() as connection:
                    self._connection = connection
                    self._consume(connection)
            except Exception:  # broker gone: wait and reconnect, never die
                log.warning("consumer %s lost the broker; retrying", self.queue_name, exc_info=True)
                self._stop.wait(1.0)

    def _consume(self, connection: kombu.Connection) -> None:
        with connection.Consumer([queue(self.queue_name)], callbacks=[self._on_message],
                                 accept=["json"], prefetch_count=1):  # fmt: skip
            while not self._stop.is_set():
                try:
                    connection.drain_events(timeout=0.5)
                except TimeoutError:
                    continue

    def _on_message(self, body: Any, raw: kombu.Message) -> None:
        try:
            messages = [Message.from_dict(item) for item in body["messages"]]
        except (InvalidMessage, KeyError, TypeError):
            log.error("dropping a malformed batch on %s: %r", self.queue_name, body)
            raw.ack()
            return
        self.in_flight = len(messages)
        try:
            taken, refused = self._sort_out(messages)
            self._apply(messages, taken, body.get("after"))
            self._settle(taken, refused)
        except Exception:
            log.exception("a handler failed on %s; the batch goes back", self.queue_name)
            raw.requeue()
            self.in_flight = 0
            self._stop.wait(0.2)
            return
        raw.ack()
        self.in_flight = 0
        self.handled += len(messages)
        self.applied = max([self.applied, *(m.sequence for m in messages if m.sequence)])

    def _apply(self, batch: list[Message], taken: list[Message], after: Any) -> None:
        with tracing.consuming(taken, self.queue_name) as messages:  # a span each, when traced
            if self.batch_handler is not None:
                self.batch_handler(messages)
            for message in messages:
                handler = self.handlers.get(message.type)
                if handler is not None:  # other types are not this service's business
                    handler(message)
        self._follow(after, batch)

    def _sort_out(self, batch: list[Message]) -> tuple[list[Message], list[dict[str, Any]]]:
        """Split a batch into the messages this consumer reads and the ones it must handle
        and cannot (a version it does not read, a payload that breaks the schema), each of
        those as its envelope with the reason. Nothing is sent or counted yet: a batch that
        fails comes again, and is sorted again."""
        taken, refused = [], []
        for message in batch:
            if self.batch_handler is None and message.type not in self.handlers:
                taken.append(message)  # not this service's business: skipped below
                continue
            reason = message.problem(self.reads)
            if reason is None:
                taken.append(message)
            else:
                refused.append({**message.to_dict(), "refused": reason})
        return taken, refused

    def _settle(self, taken: list[Message], refused: list[dict[str, Any]]) -> None:
        """Once a batch is applied: put what was refused in the dead-letter queue, and count
        both (in the consuming thread, on its connection; before the batch is acknowledged,
        so a crash in between refuses it again rather than losing it)."""
        for message in taken:
            if self.batch_handler is not None or message.type in self.handlers:
                self.read[message.type, message.schema_version] += 1
        if not refused:
            return
        for entry in refused:
            log.error("%s refuses %s: %s", self.queue_name, entry["id"], entry["refused"])
        dead = queue(dead_letter_queue(self.queue_name))
        assert self._connection is not None  # set before consuming began
        producer = self._connection.Producer(serializer="json")
        producer.publish({"messages": refused}, exchange="", routing_key=dead.name,
                         declare=[dead], delivery_mode=2)  # fmt: skip
        for entry in refused:
            self.refused[entry["type"], entry["schema_version"]] += 1
        self.last_refusal = refused[-1]["refused"]

    def _follow(self, after: Any, messages: list[Message]) -> None:
        """Move the position past a batch that follows on from it; note a gap otherwise."""
        if not isinstance(after, int):
            return  # not one of sync's deliveries (e.g. its "caught up" note)
        last = max((m.sequence for m in messages if m.sequence), default=0)
        if after > self.position:
            log.warning("%s missed changes %d..%d; sync will send them again",
                        self.queue_name, self.position + 1, after)  # fmt: skip
        elif last > self.position:
            self.position = last
            if self.on_position is not None:
                self.on_position(last)
