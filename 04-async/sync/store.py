"""The sync service's data: the log (every change, numbered), and each subscriber's place.

Owners publish their changes to the sync queue. Sync numbers each new change (the log's
sequence), then delivers to every subscriber whose types match everything after that
subscriber's checkpoint. Live fan-out, catching up after a crash and a full replay are the
same loop from different checkpoints.

A subscriber that starts empty asks for a replay and waits: once every owner of its types
has said its outbox is drained (what it held at start is in the log), sync follows the
replay with a "caught up" message naming the last change of its types, and the subscriber
is ready when it has applied that one.

Nothing lost goes unnoticed: each batch sync sends names the last change it sent that
subscriber before (`after`), and a subscriber's position moves only along batches that
follow on. An idle subscriber reports its position when it declares itself again (every
few seconds); if sync has sent it more than that and sent nothing for a while, the broker
lost what was missing, and sync sends it again from there. Until the positions agree with
what was sent, sync's /readyz counts the subscriber as waiting, so the stage is not settled.

The same on the way in: an idle owner announces a digest of each type it owns (how many
entities, and the sum of their versions); sync keeps the same digest of its log. If the
owner's differs while it holds at least as many entities, and the owner announces the
same digest again (it was idle in between), the broker lost changes on their way to sync
(a broker that keeps nothing on disk, restarted): sync asks the owner to publish that type
again (`outbox.resend` on the owner's own queue), logs what it lacked (the rest are
duplicates, dropped), and counts the type as waiting until the digests agree. Sync counts
its digests again from `latest` each time it starts and before it asks, so a kill between
logging a change and counting it leaves no false difference.
"""

import asyncio
import logging
import time
import weakref
from typing import Any

import pymongo
from pymongo.errors import DuplicateKeyError

from chassis.messaging.broker import Publisher
from chassis.service import AsyncDatabase
from workshop.platform.broker import MAX_BATCH
from workshop.platform.messages import (
    CAUGHT_UP,
    DIGEST_COMMENT,
    DIGEST_MODULUS,
    MASTER_DATA_TYPES,
    OUTBOX_DRAINED,
    OUTBOX_RESEND,
    SUBSCRIPTION_DECLARED,
    Message,
    digest,
    resend_queue,
)
from workshop.platform.metrics import subscriber_lag
from workshop.platform.schemas import FIRST

# One writer at a time: the consumer's batches and the admin replay call share the log.
# One lock per event loop: an asyncio.Lock belongs to the loop it first waits on.
_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    return _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


log = logging.getLogger(__name__)
# A change sent this long before an idle subscriber's report has had time to arrive: if
# the subscriber lacks it, the broker lost it.
ARRIVED_WITHIN_SECONDS = 2.0
# What sync remembers of its sends to a subscriber: the last change sent in each second,
# for the last SENDS_KEPT seconds it sent anything.
SENDS_KEPT = 30
# A subscriber silent this long (stopped for good, say) no longer counts as waiting.
REPORTS_EXPIRE_SECONDS = 15.0
# How often sync asks an owner to publish a type again while their digests differ.
RESEND_EVERY_SECONDS = 30.0


async def setup(database: AsyncDatabase) -> None:
    """Index the log by sequence, and by type for deliveries; count the log's digests again.

    The digests are counted from `latest` at every start (and again before sync asks an
    owner for everything): a sync killed between logging a change and counting it must not
    keep a digest one change short (the owner's would never agree, and sync would ask it
    for everything again, for ever).
    """
    await database.log.create_index("seq")
    await database.log.create_index([("type", 1), ("seq", 1)])
    for message_type in MASTER_DATA_TYPES:
        await recount(database, message_type)


async def recount(database: AsyncDatabase, message_type: str) -> list[int]:
    """Count the log's digest of a type again from `latest` (one row per entity, its latest
    version), keep it, and return it."""
    rows = database.latest.find(
        {"_id": {"$gt": f"{message_type}/", "$lt": f"{message_type}0"}},  # "type/..."
        {"version": 1}, comment=DIGEST_COMMENT,
    )  # fmt: skip
    counted = digest([row["version"] async for row in rows])
    await database.digests.update_one(
        {"_id": message_type}, {"$set": {"count": counted[0], "checksum": counted[1]}}, upsert=True
    )
    return counted


async def _count_in_digest(database: AsyncDatabase, message: Message) -> None:
    """Keep the log's digest of a type (entities, and the sum of their latest versions) as
    a change is logged: a new entity adds one and its version, a newer version the step."""
    before = await database.latest.find_one_and_update(
        {"_id": f"{message.type}/{message.key}"}, {"$max": {"version": message.version}},
        upsert=True, return_document=pymongo.ReturnDocument.BEFORE,
    )  # fmt: skip
    old = before.get("version") if before else None
    if old is not None and old >= message.version:
        return
    known = await database.digests.find_one({"_id": message.type}) or {"count": 0, "checksum": 0}
    count = known["count"] + (old is None)
    checksum = (known["checksum"] + message.version - (old or 0)) % DIGEST_MODULUS
    await database.digests.update_one(
        {"_id": message.type}, {"$set": {"count": count, "checksum": checksum}}, upsert=True
    )


async def log_digest(database: AsyncDatabase, message_type: str) -> list[int]:
    """Return the log's digest of a type: [entities, sum of their latest versions]."""
    known = await database.digests.find_one({"_id": message_type}) or {"count": 0, "checksum": 0}
    return [known["count"], known["checksum"]]


async def append(database: AsyncDatabase, message: Message) -> Message | None:
    """Add a change to the log with the next sequence number; a duplicate is dropped.

    The message id (type/key/version) is the log's key, so a change published twice is
    logged once. A dropped duplicate leaves a gap in the numbers, which harms nothing.
    """
    counter = await database.counters.find_one_and_update(
        {"_id": "log"}, {"$inc": {"seq": 1}}, upsert=True,
        return_document=pymongo.ReturnDocument.AFTER,
    )  # fmt: skip
    seq = counter["seq"]
    entry = {"_id": message.id, "seq": seq, "type": message.type,
             "message": message.with_sequence(seq).to_dict()}  # fmt: skip
    try:
        await database.log.insert_one(entry)
    except DuplicateKeyError:
        # Logged before; a sync killed right after logging it may not have counted it.
        await _count_in_digest(database, message)
        return None
    logged = Message.from_dict(entry["message"])
    await _count_in_digest(database, logged)
    return logged


async def head(database: AsyncDatabase) -> int:
    """Return the sequence number of the latest change."""
    counter = await database.counters.find_one({"_id": "log"})
    return counter["seq"] if counter else 0


async def subscribe(
    database: AsyncDatabase,
    queue: str,
    types: list[str],
    replay: bool,
    catching_up: bool = False,
    applied: int | None = None,
    reported_at: float | None = None,
    reads: dict[str, list[int]] | None = None,
) -> None:
    """Record a subscriber; a new one (or one asking for a replay) starts from zero.

    `catching_up`: the subscriber still waits to hear that it has caught up. `applied`:
    the position an idle subscriber reported at `reported_at`; if it lacks a change sent
    well before that, the broker lost it, and it is sent everything after `applied` again.
    `reads`: the versions of each type it reads (kept as a list: a stored field's name
    cannot hold the type's dot).
    """
    known = await database.subscribers.find_one({"_id": queue})
    checkpoint = 0 if replay or known is None else known["checkpoint"]
    fields: dict[str, Any] = {"types": types, "checkpoint": checkpoint, "catching_up": catching_up}
    if reads is not None:
        fields["reads"] = [{"type": kind, "versions": versions} for kind, versions in reads.items()]
    if applied is not None and reported_at is not None and known is not None and not replay:
        arrived = sent_before(known, reported_at - ARRIVED_WITHIN_SECONDS)
        fields.update(applied=applied, reported_at=time.time(), behind=applied < arrived,
                      ahead=applied > await head(database))  # fmt: skip
        if applied < arrived:
            log.warning("%s applied through %d, but was sent %d: the broker lost the rest; "
                        "sending it again", queue, applied, arrived)  # fmt: skip
            fields["checkpoint"] = min(checkpoint, applied)
    await database.subscribers.update_one({"_id": queue}, {"$set": fields}, upsert=True)


def declared_reads(payload: dict[str, Any]) -> dict[str, list[int]]:
    """Read the versions a subscriber declared it reads of each type (none declared: a
    subscriber from before versions, which reads the first)."""
    reads = payload.get("reads")
    if not isinstance(reads, dict):
        return {}
    return {str(kind): [int(v) for v in versions] for kind, versions in reads.items()}


def readable(subscriber: dict[str, Any], messages: list[Message]) -> list[Message]:
    """Hand a subscriber each change in a version it reads: a reader of post.upserted v1
    gets a v2 change without v2's fields (workshop/platform/schemas says when that is possible)."""
    reads = {entry["type"]: entry["versions"] for entry in subscriber.get("reads", [])}
    return [message.for_reader(reads.get(message.type, (FIRST,))) for message in messages]


def sent_before(subscriber: dict[str, Any], moment: float) -> int:
    """Return the last change sent to a subscriber before `moment` (as far as remembered)."""
    sends = [seq for second, seq in subscriber.get("sends", []) if second + 1 <= moment]
    return max(sends, default=0)


async def waiting(database: AsyncDatabase) -> int:
    """Count the stores that disagree with the log: subscribers that lacked changes they
    were sent (until they report having them) or hold ones the log lacks, owners that hold
    fewer entities than it knows of, and owners whose changes the log lacks (until their
    digests agree). A subscriber silent for long is not counted."""
    recent = {"reported_at": {"$gt": time.time() - REPORTS_EXPIRE_SECONDS}}
    disagree = {"$or": [{"behind": True}, {"ahead": True}]}
    subscribers = await database.subscribers.count_documents({**recent, **disagree})
    short = {"$or": [{"missing": {"$gt": 0}}, {"lacking": True}]}  # lost data, or lacks some
    owners = await database.drained.count_documents(short)
    return subscribers + owners


async def drained(
    database: AsyncDatabase,
    types: list[str],
    held: dict[str, int] | None = None,
    digests: dict[str, Any] | None = None,
) -> list[str]:
    """Record that the owner of these types has published everything it held, how many
    entities the log knows of that it no longer holds (it lost data its subscribers have),
    and whether the log lacks some of its changes (their digests differ, the owner holding
    at least as many entities). Return the types to ask the owner to publish again."""
    again = []
    for message_type in types:
        fields: dict[str, Any] = {"at": time.time()}
        announced = (digests or {}).get(message_type)
        if _is_digest(announced):
            logged = await log_digest(database, message_type)
            before = await database.drained.find_one({"_id": message_type}) or {}
            # The same digest twice: the owner was idle between (a change made while it
            # counted shows in its digest before it is published, and is no loss).
            repeated = before.get("announced") == announced
            if _lacks(announced, logged) and repeated:
                # A handler that failed between noting a version and counting it leaves the
                # digest short until it is counted again: count it before asking for all.
                logged = await recount(database, message_type)
            lacking = _lacks(announced, logged)
            fields.update(lacking=lacking, announced=announced)
            due = time.time() - before.get("resent_at", 0) > RESEND_EVERY_SECONDS
            if lacking and repeated and due:
                log.warning("the log lacks changes of %s (owner %s, log %s): the broker lost "
                            "them; asking the owner for all again", message_type, announced,
                            logged)  # fmt: skip
                fields["resent_at"] = time.time()
                again.append(message_type)
        if isinstance(held, dict) and isinstance(held.get(message_type), int):
            # Counting the log's keys scans it: only when the owner or the log has changed.
            before = await database.drained.find_one({"_id": message_type}) or {}
            log_head = await head(database)
            if (before.get("held"), before.get("checked_head")) != (held[message_type], log_head):
                logged = len(await database.log.distinct("message.key", {"type": message_type}))
                fields.update(missing=max(0, logged - held[message_type]),
                              held=held[message_type], checked_head=log_head)  # fmt: skip
        await database.drained.update_one({"_id": message_type}, {"$set": fields}, upsert=True)
    return again


def _lacks(announced: list[int], logged: list[int]) -> bool:
    """Tell whether the log lacks changes an owner's digest counts (it holds as many
    entities or more, and the digests differ)."""
    return announced != logged and announced[0] >= logged[0]


def _is_digest(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)


async def tell_caught_up(
    database: AsyncDatabase, publisher: Publisher, subscriber: dict[str, Any]
) -> None:
    """Tell a catching-up subscriber the last change of its types, once every owner is in.

    Sent after the replay on the same queue: the subscriber is caught up when it has
    applied that change. Until every owner has drained its outbox, the log may still lack
    the data the owners started with, so the subscriber keeps waiting.
    """
    types = subscriber["types"]
    if await database.drained.count_documents({"_id": {"$in": types}}) < len(set(types)):
        return
    latest = await database.log.find_one({"type": {"$in": types}}, sort=[("seq", -1)])
    through = latest["seq"] if latest else 0
    message = Message(CAUGHT_UP, subscriber["_id"], time.time_ns(), {"through": through}, "sync")
    await publisher.publish([message], subscriber["_id"])
    await database.subscribers.update_one({"_id": subscriber["_id"]}, {"$set": {"catching_up": False}})


async def deliver(database: AsyncDatabase, publisher: Publisher, subscriber: dict[str, Any]) -> int:
    """Send a subscriber every change of its types after its checkpoint; return how many."""
    sent, checkpoint, types = 0, subscriber["checkpoint"], subscriber["types"]
    older = {"seq": {"$lte": checkpoint}, "type": {"$in": types}}
    before = await database.log.find_one(older, sort=[("seq", -1)])
    after = before["seq"] if before else 0
    while True:
        newer = {"seq": {"$gt": checkpoint}, "type": {"$in": types}}
        entries = await database.log.find(newer).sort("seq", 1).limit(MAX_BATCH).to_list()
        if not entries:
            break
        messages = readable(subscriber, [Message.from_dict(e["message"]) for e in entries])
        await publisher.publish(messages, subscriber["_id"], after=after)
        after = checkpoint = entries[-1]["seq"]
        # The checkpoint moves only after the broker took the batch: a crash re-sends it.
        await _sent(database, subscriber["_id"], checkpoint, checkpoint)
        sent += len(entries)
    return sent


async def _sent(database: AsyncDatabase, queue: str, checkpoint: int, sent_through: int | None) -> None:
    """Record how far a subscriber has been brought, and the last change sent to it (in
    the second it was sent: an idle subscriber's report is compared with these)."""
    changes: dict[str, Any] = {"$max": {"checkpoint": checkpoint}}
    if sent_through is not None:
        changes["$max"]["sent_through"] = sent_through
        known = await database.subscribers.find_one({"_id": queue}, {"sends": 1}) or {}
        changes["$set"] = {"sends": remember_send(known.get("sends", []), sent_through)}
    await database.subscribers.update_one({"_id": queue}, changes)


def remember_send(sends: list[list[float]], seq: int) -> list[list[float]]:
    """Add a send to a subscriber's record: the last change sent in each second, a few."""
    second = float(int(time.time()))
    if sends and sends[-1][0] == second:
        return [*sends[:-1], [second, max(seq, sends[-1][1])]]
    return [*sends, [second, seq]][-SENDS_KEPT:]


async def on_batch(database: AsyncDatabase, publisher: Publisher, messages: list[Message]) -> None:
    """Log the changes in a batch, record subscriptions, then bring every subscriber up to date."""
    async with _lock():
        before = await head(database)
        logged = []
        for message in messages:
            if message.type in MASTER_DATA_TYPES:
                entry = await append(database, message)
                if entry is not None:
                    logged.append(entry)
            elif message.type == SUBSCRIPTION_DECLARED:
                payload = message.payload
                applied = payload.get("applied")
                await subscribe(
                    database,
                    payload["queue"],
                    list(payload["types"]),
                    bool(payload["replay"]),
                    bool(payload.get("catching_up")),
                    applied if isinstance(applied, int) else None,
                    message.version / 1e9,  # declared at (time_ns)
                    declared_reads(payload),
                )
            elif message.type == OUTBOX_DRAINED:
                payload = message.payload
                types, held = list(payload["types"]), payload.get("held")
                again = await drained(database, types, held, payload.get("digest"))
                if again:
                    ask = Message(OUTBOX_RESEND, message.source, time.time_ns(),
                                  {"types": again}, "sync")  # fmt: skip
                    await publisher.publish([ask], resend_queue(message.source))
        for subscriber in await database.subscribers.find().to_list():
            if subscriber["checkpoint"] >= before:
                await send_new(database, publisher, subscriber, logged)
            else:
                await deliver(database, publisher, subscriber)
            if subscriber.get("catching_up"):
                await tell_caught_up(database, publisher, subscriber)


async def send_new(
    database: AsyncDatabase, publisher: Publisher, subscriber: dict[str, Any], logged: list[Message]
) -> None:
    """Send an up-to-date subscriber just this batch's changes (no need to read the log)."""
    wanted = readable(subscriber, [m for m in logged if m.type in subscriber["types"]])
    await publisher.publish(wanted, subscriber["_id"], after=subscriber.get("sent_through", 0))
    if logged:
        last_sent = wanted[-1].sequence if wanted else None
        await _sent(database, subscriber["_id"], logged[-1].sequence, last_sent)


async def replay(database: AsyncDatabase, publisher: Publisher, queue: str) -> int | None:
    """Re-send a subscriber everything from zero (a new version's bootstrap); None if unknown."""
    async with _lock():
        return await _replay(database, publisher, queue)


async def _replay(database: AsyncDatabase, publisher: Publisher, queue: str) -> int | None:
    subscriber = await database.subscribers.find_one({"_id": queue})
    if subscriber is None:
        return None
    await database.subscribers.update_one({"_id": queue}, {"$set": {"checkpoint": 0}})
    return await deliver(database, publisher, {**subscriber, "checkpoint": 0})


async def subscribers(database: AsyncDatabase) -> list[dict[str, Any]]:
    """Return every subscriber with its types, checkpoint, and whether it is catching up."""
    return [
        {"queue": s["_id"], "types": s["types"], "checkpoint": s["checkpoint"],
         "catching_up": bool(s.get("catching_up")),
         "reads": {entry["type"]: entry["versions"] for entry in s.get("reads", [])}}
        for s in await database.subscribers.find().sort("_id", 1).to_list()
    ]  # fmt: skip


async def lag(database: AsyncDatabase) -> dict[str, int]:
    """Return how many changes of the log each subscriber's checkpoint is behind."""
    return subscriber_lag(await head(database), await subscribers(database))
