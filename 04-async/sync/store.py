"""The sync service's data: the log (every change, numbered), and each subscriber's place.

Owners publish their changes to the sync queue. Sync numbers each new change (the log's
sequence), then delivers to every subscriber whose types match everything after that
subscriber's checkpoint. Live fan-out, catching up after a crash and a full replay are the
same loop from different checkpoints.

An operator's replay (`workshop sync replay SERVICE`) is a Celery task in 04: the worker
sends sync a "replay.requested" message, sync replays in turn with its other batches and
answers "replay.done" on the task's own queue (see ingest/tasks.py).

A subscriber that starts empty asks for a replay and waits: once every owner of its types
has said its outbox is drained (what it held at start is in the log), sync follows the
replay with a "caught up" message naming the last change of its types, and the subscriber
is ready when it has applied that one.
"""

import asyncio
import time
import weakref
from typing import Any

import pymongo
from pymongo.errors import DuplicateKeyError

from chassis.messaging.broker import Publisher
from workshop.broker import MAX_BATCH
from workshop.messages import (
    CAUGHT_UP,
    MASTER_DATA_TYPES,
    OUTBOX_DRAINED,
    REPLAY_DONE,
    REPLAY_REQUESTED,
    SUBSCRIPTION_DECLARED,
    Message,
)

# One writer at a time: the consumer's batches and the admin replay call share the log.
# One lock per event loop: an asyncio.Lock belongs to the loop it first waits on.
_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = (
    weakref.WeakKeyDictionary()
)


def _lock() -> asyncio.Lock:
    return _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


async def setup(database: Any) -> None:
    """Index the log by sequence, and by type for deliveries."""
    await database.log.create_index("seq")
    await database.log.create_index([("type", 1), ("seq", 1)])


async def append(database: Any, message: Message) -> Message | None:
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
        return None
    return Message.from_dict(entry["message"])


async def head(database: Any) -> int:
    """Return the sequence number of the latest change."""
    counter = await database.counters.find_one({"_id": "log"})
    return counter["seq"] if counter else 0


async def subscribe(
    database: Any, queue: str, types: list[str], replay: bool, catching_up: bool = False
) -> None:
    """Record a subscriber; a new one (or one asking for a replay) starts from zero.

    `catching_up`: the subscriber still waits to hear that it has caught up.
    """
    known = await database.subscribers.find_one({"_id": queue})
    checkpoint = 0 if replay or known is None else known["checkpoint"]
    fields = {"types": types, "checkpoint": checkpoint, "catching_up": catching_up}
    await database.subscribers.update_one({"_id": queue}, {"$set": fields}, upsert=True)


async def drained(database: Any, types: list[str]) -> None:
    """Record that the owner of these types has published everything it held."""
    for message_type in types:
        await database.drained.update_one({"_id": message_type}, {"$set": {"at": time.time()}},
                                    upsert=True)  # fmt: skip


async def tell_caught_up(database: Any, publisher: Publisher, subscriber: dict[str, Any]) -> None:
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
    await database.subscribers.update_one(
        {"_id": subscriber["_id"]}, {"$set": {"catching_up": False}}
    )


async def deliver(database: Any, publisher: Publisher, subscriber: dict[str, Any]) -> int:
    """Send a subscriber every change of its types after its checkpoint; return how many."""
    sent, checkpoint = 0, subscriber["checkpoint"]
    while True:
        after = {"seq": {"$gt": checkpoint}, "type": {"$in": subscriber["types"]}}
        entries = await database.log.find(after).sort("seq", 1).limit(MAX_BATCH).to_list()
        if not entries:
            break
        await publisher.publish(
            [Message.from_dict(e["message"]) for e in entries], subscriber["_id"]
        )
        checkpoint = entries[-1]["seq"]
        # The checkpoint moves only after the broker took the batch: a crash re-sends it.
        await database.subscribers.update_one(
            {"_id": subscriber["_id"]}, {"$max": {"checkpoint": checkpoint}}
        )
        sent += len(entries)
    return sent


async def on_batch(database: Any, publisher: Publisher, messages: list[Message]) -> None:
    """Log the changes in a batch, record subscriptions, then bring every subscriber up to date."""
    async with _lock():
        before = await head(database)
        logged, replays = [], []
        for message in messages:
            if message.type in MASTER_DATA_TYPES:
                entry = await append(database, message)
                if entry is not None:
                    logged.append(entry)
            elif message.type == SUBSCRIPTION_DECLARED:
                payload = message.payload
                await subscribe(database, payload["queue"], list(payload["types"]),
                          bool(payload["replay"]), bool(payload.get("catching_up")))  # fmt: skip
            elif message.type == OUTBOX_DRAINED:
                await drained(database, list(message.payload["types"]))
            elif message.type == REPLAY_REQUESTED:
                replays.append(message.payload)
        for subscriber in await database.subscribers.find().to_list():
            if subscriber["checkpoint"] >= before:
                await send_new(database, publisher, subscriber, logged)
            else:
                await deliver(database, publisher, subscriber)
            if subscriber.get("catching_up"):
                await tell_caught_up(database, publisher, subscriber)
        for request in replays:
            await answer_replay(database, publisher, request)


async def send_new(
    database: Any, publisher: Publisher, subscriber: dict[str, Any], logged: list[Message]
) -> None:
    """Send an up-to-date subscriber just this batch's changes (no need to read the log)."""
    wanted = [message for message in logged if message.type in subscriber["types"]]
    await publisher.publish(wanted, subscriber["_id"])
    if logged:
        await database.subscribers.update_one(
            {"_id": subscriber["_id"]}, {"$max": {"checkpoint": logged[-1].sequence}}
        )


async def replay(database: Any, publisher: Publisher, queue: str) -> int | None:
    """Re-send a subscriber everything from zero (a new version's bootstrap); None if unknown."""
    async with _lock():
        return await _replay(database, publisher, queue)


async def _replay(database: Any, publisher: Publisher, queue: str) -> int | None:
    subscriber = await database.subscribers.find_one({"_id": queue})
    if subscriber is None:
        return None
    await database.subscribers.update_one({"_id": queue}, {"$set": {"checkpoint": 0}})
    return await deliver(database, publisher, {**subscriber, "checkpoint": 0})


async def answer_replay(database: Any, publisher: Publisher, request: dict[str, Any]) -> None:
    """Replay for a task that asked (the lock held), and tell it on its own queue how many
    changes were sent (None: no such subscriber)."""
    sent = await _replay(database, publisher, str(request["queue"]))
    answer = {"queue": request["queue"], "sent": sent}
    message = Message(REPLAY_DONE, str(request["queue"]), time.time_ns(), answer, "sync")
    await publisher.publish([message], str(request["reply_to"]))


async def subscribers(database: Any) -> list[dict[str, Any]]:
    """Return every subscriber with its types, checkpoint, and whether it is catching up."""
    return [
        {"queue": s["_id"], "types": s["types"], "checkpoint": s["checkpoint"],
         "catching_up": bool(s.get("catching_up"))}
        for s in await database.subscribers.find().sort("_id", 1).to_list()
    ]  # fmt: skip
