"""The outbox, without transactions: a change and "this must be published" in one write.

An owner changes a document and, in the same single-document update (atomic in MongoDB
and in the emulation), bumps its version and marks it pending. A relay claims pending
documents with a lease, publishes their current state, and clears the mark only if the
version is still the one it published. A change made meanwhile stays pending and goes out
next round: no change is lost between the write and the publish, and none needs a
transaction.

What the broker loses after taking it (one that keeps nothing on disk, restarted) is
found out by sync: an idle relay announces a digest of each type it owns, and when the
log's differs, sync asks for that type again on the relay's own queue; the relay marks
every entity of it pending and publishes them all (sync drops the ones it has).
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chassis.messaging.broker import Consumer, Publisher
from workshop import tracing
from workshop.db import Collection
from workshop.platform.broker import MAX_BATCH, SYNC_QUEUE
from workshop.platform.messages import (
    DIGEST_COMMENT,
    OUTBOX_DRAINED,
    OUTBOX_RESEND,
    Message,
    digest,
    resend_queue,
)

log = logging.getLogger(__name__)

LEASE_SECONDS = 10.0
IDLE_POLL_SECONDS = 0.02
MAX_IDLE_POLL_SECONDS = 0.2
# An idle relay tells sync again now and then: a sync that restarted without its memory
# learns it back, as it learns its subscribers back from their declarations.
DRAINED_EVERY_SECONDS = 5.0


# Set by an owner right after a marked write, so its relay publishes at once; the relay's
# own polling is only the safety net (for a crash, or a write from another process).
_nudge = threading.Event()


def nudge() -> None:
    """Tell this process's relays that a change is waiting."""
    _nudge.set()


def created(fields: dict[str, Any], version: int) -> dict[str, Any]:
    """Return an upsert's insert: a new document, at its first version, to be published."""
    fields = {**fields, "version": version, "outbox_pending": True, **tracing.outbox_fields()}
    return {"$setOnInsert": fields}


def changed(fields: dict[str, Any]) -> dict[str, Any]:
    """Return the update that sets fields AND records that the change must be published."""
    return {
        # With tracing on, the change keeps the trace it was made in, for its message.
        "$set": {**fields, "outbox_pending": True, **tracing.outbox_fields()},
        "$inc": {"version": 1},
        # A relay that claimed the old version must not clear the new one.
        "$unset": {"lease_owner": "", "lease_until": ""},
    }


def changed_inc(increments: dict[str, int]) -> dict[str, Any]:
    """Like `changed`, for counters: increment fields and mark the document pending."""
    return {
        "$set": {"outbox_pending": True, **tracing.outbox_fields()},
        "$inc": {**increments, "version": 1},
        "$unset": {"lease_owner": "", "lease_until": ""},
    }


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Source:
    """A collection whose pending documents become messages of one type (or more)."""

    collection: Collection
    message_type: str
    payload: Callable[[dict[str, Any]], dict[str, Any]]
    # More types each change goes out as, with the same key and version: the monolith of
    # the strangler fig publishes a user's topics for the copies, and the whole account
    # for the users service that will take it over.
    also: tuple[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]], ...] = ()
    # Whether this process owns the data now: in the strangler fig, ownership moves from
    # the monolith to a service, and only the owner publishes (and tells sync its digest).
    active: Callable[[], bool] = _always

    def types(self) -> list[str]:
        """Return the message types a change goes out as."""
        return [self.message_type, *(kind for kind, _ in self.also)]

    def messages(self, document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Return each (type, payload) a changed document goes out as."""
        kinds = [(self.message_type, self.payload), *self.also]
        return [(kind, payload(document)) for kind, payload in kinds]


class Relay:
    """Publish the pending documents of an owner's collections to the sync service."""

    def __init__(self, service: str, sources: list[Source], publisher: Publisher) -> None:
        self.service = service
        self.every_source = sources
        self.publisher = publisher
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"relay-{service}", daemon=True)
        # Sync's requests to publish a type again arrive on a queue of the relay's own.
        self.listener = Consumer(resend_queue(service), {OUTBOX_RESEND: self.resend})
        self._digests: dict[str, list[int]] | None = None  # as last announced (None: redo)

    def start(self) -> None:
        for source in self.every_source:
            source.collection.create_index("outbox_pending")
        self._thread.start()
        self.listener.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        _nudge.set()
        self.listener.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def sources(self) -> list[Source]:
        """The sources this process owns now: all, but in a migration (the strangler fig)."""
        return [source for source in self.every_source if source.active()]

    def resend(self, message: Message) -> None:
        """Mark every entity of the types sync asks for pending: they all go out again."""
        for source in self.sources:
            if set(source.types()) & set(message.payload.get("types", [])):
                log.warning("sync lacks changes of %s: publishing every one again",
                            source.message_type)  # fmt: skip
                source.collection.update_many({}, {"$set": {"outbox_pending": True}})
        nudge()

    def digests(self, sources: list[Source] | None = None) -> dict[str, list[int]]:
        """Return each type's digest (entities, sum of versions), counted again only after
        something was published since (it reads every entity); of `sources` if given (the
        ones owned as the caller read them), else of the ones owned now."""
        sources = self.sources if sources is None else sources
        types = {kind for source in sources for kind in source.types()}
        if self._digests is None or set(self._digests) != types:  # or ownership moved
            digests = {}
            for source in sources:
                entities = source.collection.find({}, {"version": 1}, comment=DIGEST_COMMENT)
                versions = [d.get("version", 0) for d in entities.to_list()]
                # A type published alongside another counts the same entities and versions.
                digests.update(dict.fromkeys(source.types(), digest(versions)))
            self._digests = digests
        return self._digests

    def pending(self) -> int:
        """Return how many changes wait to be published."""
        counts = [s.collection.count_documents({"outbox_pending": True})
                  for s in self.sources]  # fmt: skip
        return sum(counts)

    def _run(self) -> None:
        idle = IDLE_POLL_SECONDS
        announced: float | None = None  # when we last told sync the outbox was drained
        while not self._stop.is_set():
            try:
                sent = 0
                for source in self.sources:
                    sent += self.relay_once(source)
                due = announced is None or time.monotonic() - announced > DRAINED_EVERY_SECONDS
                if not sent and due and self.pending() == 0:
                    self.announce_drained()
                    announced = time.monotonic()
            except Exception:  # broker or store down: keep the marks, try again later
                log.warning("relay %s could not publish; retrying", self.service, exc_info=True)
                sent = 0
                self._stop.wait(1.0)
            # Look again at once while there is work; back off when idle (each look scans).
            idle = IDLE_POLL_SECONDS if sent else min(idle * 2, MAX_IDLE_POLL_SECONDS)
            if not sent and _nudge.wait(idle):
                _nudge.clear()

    def announce_drained(self) -> None:
        """Tell sync every change this owner holds is published (new subscribers wait for it),
        and how many entities it holds of each type: fewer than sync has logged means this
        owner lost data its subscribers have (sync then says the stage is not settled)."""
        sources = self.sources  # once: a move may land meanwhile, the message stays whole
        types = [kind for source in sources for kind in source.types()]
        held = {kind: s.collection.estimated_document_count()
                for s in sources for kind in s.types()}  # fmt: skip
        payload = {"types": types, "held": held, "digest": self.digests(sources)}
        message = Message(OUTBOX_DRAINED, self.service, time.time_ns(), payload, self.service)
        self.publisher.publish([message], SYNC_QUEUE)

    def relay_once(self, source: Source) -> int:
        """Claim, publish and clear one batch of pending documents; return how many."""
        owner, now = uuid.uuid4().hex, time.time()
        claimable = {
            "outbox_pending": True,
            "$or": [{"lease_until": {"$exists": False}}, {"lease_until": {"$lt": now}}],
        }
        found = source.collection.find(claimable, {"_id": 1}).limit(MAX_BATCH)
        batch = [d["_id"] for d in found.to_list()]
        if not batch:
            return 0
        # The claim is a conditional write per document (what find_one_and_update does for
        # one, update_many does for a batch): a document leased by another relay no longer
        # matches `claimable`, so only one relay owns each lease.
        source.collection.update_many(
            {"_id": {"$in": batch}, **claimable},
            {"$set": {"lease_owner": owner, "lease_until": now + LEASE_SECONDS}},
        )
        leased = source.collection.find({"_id": {"$in": batch}, "lease_owner": owner})
        messages = [
            Message(
                kind,
                str(d["_id"]),
                d["version"],
                payload,
                self.service,
                trace=tracing.outbox_trace(d),
            )
            for d in leased.to_list()
            for kind, payload in source.messages(d)
        ]
        try:
            self.publisher.publish(messages, SYNC_QUEUE)
        except Exception:
            # Give the claim back: the next try takes these at once, not after the lease.
            source.collection.update_many(
                {"_id": {"$in": batch}, "lease_owner": owner},
                {"$unset": {"lease_owner": "", "lease_until": ""}},
            )
            raise
        # Only documents still under our lease (not changed meanwhile) are done.
        source.collection.update_many(
            {"_id": {"$in": batch}, "lease_owner": owner},
            {"$set": {"outbox_pending": False}, "$unset": {"lease_owner": "", "lease_until": ""}},
        )
        self.published += len(messages)
        self._digests = None  # published something: the digests are counted again
        return len(messages)
