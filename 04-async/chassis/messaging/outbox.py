"""The outbox, without transactions: a change and "this must be published" in one write.

An owner changes a document and, in the same single-document update (atomic in MongoDB
and in the emulation), bumps its version and marks it pending. A relay claims pending
documents with a lease, publishes their current state, and clears the mark only if the
version is still the one it published. A change made meanwhile stays pending and goes out
next round: no change is lost between the write and the publish, and none needs a
transaction. The relay is an asyncio task on the service's event loop.

What the broker loses after taking it (one that keeps nothing on disk, restarted) is
found out by sync: an idle relay announces a digest of each type it owns, and when the
log's differs, sync asks for that type again on the relay's own queue; the relay marks
every entity of it pending and publishes them all (sync drops the ones it has).
"""

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chassis.messaging.broker import Consumer, Publisher
from workshop import tracing
from workshop.db import AsyncCollection
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
# One event per event loop: an asyncio.Event belongs to the loop that first waits on it.
_nudges: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event]" = (
    weakref.WeakKeyDictionary()
)


def _nudged() -> asyncio.Event:
    return _nudges.setdefault(asyncio.get_running_loop(), asyncio.Event())


def nudge() -> None:
    """Tell this process's relays that a change is waiting (call it on the event loop)."""
    _nudged().set()


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


@dataclass(frozen=True)
class Source:
    """A collection whose pending documents become messages of one type."""

    collection: AsyncCollection
    message_type: str
    payload: Callable[[dict[str, Any]], dict[str, Any]]


class Relay:
    """Publish the pending documents of an owner's collections to the sync service."""

    def __init__(self, service: str, sources: list[Source], publisher: Publisher) -> None:
        self.service = service
        self.sources = sources
        self.publisher = publisher
        self.published = 0
        self._task: asyncio.Task | None = None
        # One round at a time, so flush() knows a round the loop had begun is over.
        self._round = asyncio.Lock()
        # Sync's requests to publish a type again arrive on a queue of the relay's own.
        self.listener = Consumer(resend_queue(service), {OUTBOX_RESEND: self.resend})
        self._digests: dict[str, list[int]] | None = None  # as last announced (None: redo)

    async def start(self) -> None:
        for source in self.sources:
            await source.collection.create_index("outbox_pending")
        self._task = asyncio.create_task(self._run(), name=f"relay-{self.service}")
        self.listener.start(asyncio.get_running_loop())

    async def stop(self) -> None:
        await asyncio.to_thread(self.listener.stop)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def resend(self, message: Message) -> None:
        """Mark every entity of the types sync asks for pending: they all go out again."""
        for source in self.sources:
            if source.message_type in message.payload.get("types", []):
                log.warning("sync lacks changes of %s: publishing every one again",
                            source.message_type)  # fmt: skip
                await source.collection.update_many({}, {"$set": {"outbox_pending": True}})
        nudge()

    async def digests(self) -> dict[str, list[int]]:
        """Return each type's digest (entities, sum of versions), counted again only after
        something was published since (it reads every entity)."""
        if self._digests is None:
            digests = {}
            for source in self.sources:
                entities = source.collection.find({}, {"version": 1}, comment=DIGEST_COMMENT)
                versions = [d.get("version", 0) for d in await entities.to_list()]
                digests[source.message_type] = digest(versions)
            self._digests = digests
        return self._digests

    async def pending(self) -> int:
        """Return how many changes wait to be published."""
        counts = [await s.collection.count_documents({"outbox_pending": True})
                  for s in self.sources]  # fmt: skip
        return sum(counts)

    async def _run(self) -> None:
        idle = IDLE_POLL_SECONDS
        announced: float | None = None  # when we last told sync the outbox was drained
        while True:
            try:
                sent = 0
                async with self._round:
                    for source in self.sources:
                        sent += await self.relay_once(source)
                due = announced is None or time.monotonic() - announced > DRAINED_EVERY_SECONDS
                if not sent and due and await self.pending() == 0:
                    await self.announce_drained()
                    announced = time.monotonic()
            except Exception:  # broker or store down: keep the marks, try again later
                log.warning("relay %s could not publish; retrying", self.service, exc_info=True)
                sent = 0
                await asyncio.sleep(1.0)
            # Look again at once while there is work; back off when idle (each look scans).
            idle = IDLE_POLL_SECONDS if sent else min(idle * 2, MAX_IDLE_POLL_SECONDS)
            if not sent:
                try:
                    await asyncio.wait_for(_nudged().wait(), idle)
                    _nudged().clear()
                except TimeoutError:
                    pass

    async def flush(self, keys: list[Any]) -> None:
        """Publish the waiting changes of these documents now; return once they are all out.

        For an owner whose store dies with its process (the ingest worker, on the embedded
        store): a change it has flushed survives a kill -9, one still in its outbox would not.
        """
        async with self._round:
            for source in self.sources:
                # A round short of a full batch took every change it could claim.
                while await self.relay_once(source, keys) == MAX_BATCH:
                    pass

    async def announce_drained(self) -> None:
        """Tell sync every change this owner holds is published (new subscribers wait for it),
        and how many entities it holds of each type: fewer than sync has logged means this
        owner lost data its subscribers have (sync then says the stage is not settled)."""
        types = [source.message_type for source in self.sources]
        held = {s.message_type: await s.collection.estimated_document_count()
                for s in self.sources}  # fmt: skip
        payload = {"types": types, "held": held, "digest": await self.digests()}
        message = Message(OUTBOX_DRAINED, self.service, time.time_ns(), payload, self.service)
        await self.publisher.publish([message], SYNC_QUEUE)

    async def relay_once(self, source: Source, keys: list[Any] | None = None) -> int:
        """Claim, publish and clear one batch of pending documents (of `keys` only, if
        given); return how many."""
        owner, now = uuid.uuid4().hex, time.time()
        claimable = {
            "outbox_pending": True,
            "$or": [{"lease_until": {"$exists": False}}, {"lease_until": {"$lt": now}}],
        }
        wanted = claimable if keys is None else {"_id": {"$in": keys}, **claimable}
        found = source.collection.find(wanted, {"_id": 1}).limit(MAX_BATCH)
        batch = [d["_id"] for d in await found.to_list()]
        if not batch:
            return 0
        # The claim is a conditional write per document (what find_one_and_update does for
        # one, update_many does for a batch): a document leased by another relay no longer
        # matches `claimable`, so only one relay owns each lease.
        await source.collection.update_many(
            {"_id": {"$in": batch}, **claimable},
            {"$set": {"lease_owner": owner, "lease_until": now + LEASE_SECONDS}},
        )
        leased = source.collection.find({"_id": {"$in": batch}, "lease_owner": owner})
        messages = [
            Message(
                source.message_type,
                str(d["_id"]),
                d["version"],
                source.payload(d),
                self.service,
                trace=tracing.outbox_trace(d),
            )
            for d in await leased.to_list()
        ]
        try:
            await self.publisher.publish(messages, SYNC_QUEUE)
        except Exception:
            # Give the claim back: the next try takes these at once, not after the lease.
            await source.collection.update_many(
                {"_id": {"$in": batch}, "lease_owner": owner},
                {"$unset": {"lease_owner": "", "lease_until": ""}},
            )
            raise
        # Only documents still under our lease (not changed meanwhile) are done.
        await source.collection.update_many(
            {"_id": {"$in": batch}, "lease_owner": owner},
            {"$set": {"outbox_pending": False}, "$unset": {"lease_owner": "", "lease_until": ""}},
        )
        self.published += len(messages)
        self._digests = None  # published something: the digests are counted again
        return len(messages)
