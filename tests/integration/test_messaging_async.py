"""Stage 04's broker bridge on real Redis: the guarantees of 03's (test_messaging.py and
test_bootstrap.py), kept on the event loop.

04's Publisher sends from the loop (kombu in a thread); its Consumer drains in a thread and
applies each batch with the service's coroutines on the loop, acknowledging after they
return. The same scenarios as 03's: a stopped consumer gets everything published meanwhile,
a failing handler gets the message again, duplicates and reordering leave the same state,
and sync says "caught up" only once the owner's start-up data is in the log.
"""

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from quart import Quart

from tests.timing import scaled
from tooling.stages import get_stage
from workshop import db as databases
from workshop.platform import messages
from workshop.platform.messages import POST_UPSERTED, TAGS_CHANGED, Message
from workshop.platform.schemas import example

STAGE = get_stage("04-async")
WITHIN = 10.0
T = TypeVar("T")


@pytest.fixture
def chassis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """04's broker, inbox, sync store and sync service (loaded per test: one stage's chassis
    at a time)."""
    monkeypatch.setenv("BROKER_URL", redis_url)
    yield SimpleNamespace(
        broker=STAGE.load("chassis.messaging.broker"),
        inbox=STAGE.load("chassis.messaging.inbox"),
        sync=STAGE.load("sync.store"),
        sync_service=STAGE.load("sync.service"),
    )


async def eventually(action: Callable[[], T], accept: Callable[[T], bool], within: float) -> T:
    """tests.acceptance.stage.eventually, awaiting between tries so the loop serves meanwhile
    (the deadline likewise scaled(within) from now)."""
    deadline = time.monotonic() + scaled(within)
    while True:
        result = action()
        if accept(result) or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(0.05)


async def stopped(consumer: Any) -> None:
    """Stop a consumer from the loop (its thread may be waiting for a handler on it)."""
    await asyncio.to_thread(consumer.stop)


def change(key: str, version: int, kind: str = POST_UPSERTED) -> Message:
    payload = (
        example(POST_UPSERTED, 1, title=f"{key} v{version}")
        if kind == POST_UPSERTED
        else {"tags": [{"tag": "t", "count": version}]}
    )
    return Message(kind, key, version, payload, "test", schema_version=1)  # what Consumer reads


def test_a_stopped_consumer_receives_everything_published_meanwhile(chassis):
    queue = f"it-durable-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[set[str], int, list[Message]]:
        received: list[str] = []

        async def on_post(message: Message) -> None:
            received.append(message.id)

        publisher = chassis.broker.Publisher()
        consumer = chassis.broker.Consumer(queue, {POST_UPSERTED: on_post})
        consumer.start(asyncio.get_running_loop())
        await publisher.publish([change("a", 1)], queue)
        first = await eventually(lambda: list(received), lambda r: len(r) == 1, WITHIN)
        assert first == ["post.upserted/a/1"]
        await stopped(consumer)

        sent = [change(f"k{i}", 1) for i in range(40)]
        for start in range(0, 40, 10):
            await publisher.publish(sent[start : start + 10], queue)
        waiting = await publisher.backlog(queue)

        restarted = chassis.broker.Consumer(queue, {POST_UPSERTED: on_post})
        restarted.start(asyncio.get_running_loop())
        try:
            got = await eventually(lambda: set(received), lambda r: len(r) == 41, WITHIN)
        finally:
            await stopped(restarted)
            publisher.close()
        return got, waiting, sent

    got, waiting, sent = asyncio.run(scenario())
    assert waiting == 4, "the batches wait in Redis while nobody listens"
    assert got == {"post.upserted/a/1"} | {m.id for m in sent}


def test_a_failing_handler_gets_the_message_again(chassis):
    queue = f"it-retry-{uuid.uuid4().hex[:6]}"

    async def scenario() -> list[str]:
        attempts: list[str] = []

        async def flaky(message: Message) -> None:
            attempts.append(message.id)
            await asyncio.sleep(0)  # a real await: the handler is a coroutine on the loop
            if len(attempts) == 1:
                raise RuntimeError("first try fails")

        publisher = chassis.broker.Publisher()
        consumer = chassis.broker.Consumer(queue, {POST_UPSERTED: flaky})
        consumer.start(asyncio.get_running_loop())
        try:
            await publisher.publish([change("x", 1)], queue)
            return await eventually(lambda: list(attempts), lambda a: len(a) == 2, WITHIN)
        finally:
            await stopped(consumer)
            publisher.close()

    assert asyncio.run(scenario()) == ["post.upserted/x/1", "post.upserted/x/1"]


def test_duplicates_and_reordering_leave_the_same_state(chassis):
    """Deliver every version of every post, shuffled and twice over: the newest wins."""
    queue = f"it-order-{uuid.uuid4().hex[:6]}"
    name = f"it-idempotent-{time.time_ns()}"
    apply_versioned = chassis.inbox.apply_versioned
    messages_sent = [change(f"p{p}", v, kind) for p in range(20) for v in range(1, 4)
                     for kind in (POST_UPSERTED, TAGS_CHANGED)]  # fmt: skip
    shuffled = messages_sent * 2
    random.Random(7).shuffle(shuffled)

    async def scenario() -> list[dict[str, Any]]:
        database = databases.async_database(name)

        async def on_post(message: Message) -> None:
            await apply_versioned(
                database.posts, message.key, message.version, message.payload, "post_version"
            )

        async def on_tags(message: Message) -> None:
            await apply_versioned(
                database.posts, message.key, message.version, message.payload, "tags_version"
            )

        publisher = chassis.broker.Publisher()
        consumer = chassis.broker.Consumer(queue, {POST_UPSERTED: on_post, TAGS_CHANGED: on_tags})
        consumer.start(asyncio.get_running_loop())
        try:
            for start in range(0, len(shuffled), 25):
                await publisher.publish(shuffled[start : start + 25], queue)
            handled = await eventually(
                lambda: consumer.handled, lambda n: n == len(shuffled), WITHIN
            )
            assert handled == len(shuffled)
        finally:
            await stopped(consumer)
            publisher.close()
        documents = await database.posts.find().sort("_id", 1).to_list()
        await databases.close_async_clients()
        return documents

    documents = asyncio.run(scenario())
    databases.client().drop_database(name)
    assert len(documents) == 20
    for document in documents:
        assert document["title"] == f"{document['_id']} v3" and document["post_version"] == 3
        assert document["tags"] == [{"tag": "t", "count": 3}] and document["tags_version"] == 3


# --- a new subscriber's bootstrap: sync's side (03's test_bootstrap.py) -----------------------


def declaration(queue: str, replay: bool, catching_up: bool) -> Message:
    payload = {"queue": queue, "types": [messages.POST_UPSERTED], "replay": replay,
               "catching_up": catching_up}  # fmt: skip
    return Message(messages.SUBSCRIPTION_DECLARED, queue, time.time_ns(), payload, queue)


def post(key: str) -> Message:
    return Message(messages.POST_UPSERTED, key, 1, example(POST_UPSERTED, title=key), "ingest")


def drained() -> Message:
    payload = {"types": [messages.POST_UPSERTED]}
    return Message(messages.OUTBOX_DRAINED, "ingest", time.time_ns(), payload, "ingest")


def test_caught_up_waits_for_the_owner_and_follows_the_replay(chassis):
    sync, name = chassis.sync, f"it-sync-{time.time_ns()}"
    early, late = f"it-early-{uuid.uuid4().hex[:6]}", f"it-late-{uuid.uuid4().hex[:6]}"

    async def scenario() -> None:
        database = databases.async_database(name)
        await sync.setup(database)
        publisher = chassis.broker.Publisher()
        early_got: list[Message] = []
        late_got: list[Message] = []

        def listen(queue: str, into: list[Message]) -> Any:
            async def keep(message: Message) -> None:
                into.append(message)

            types = {messages.POST_UPSERTED: keep, messages.CAUGHT_UP: keep}
            consumer = chassis.broker.Consumer(queue, types)
            consumer.start(asyncio.get_running_loop())
            return consumer

        early_consumer, late_consumer = listen(early, early_got), listen(late, late_got)
        try:
            # A subscriber asks for its replay before the owner has published its start-up data.
            await sync.on_batch(database, publisher, [declaration(early, True, True)])
            await sync.on_batch(database, publisher, [post("a"), post("b"), post("c")])
            got = await eventually(lambda: list(early_got), lambda r: len(r) >= 3, WITHIN)
            assert [m.type for m in got] == [messages.POST_UPSERTED] * 3, "no caught-up yet"

            await sync.on_batch(database, publisher, [drained()])
            got = await eventually(lambda: list(early_got), lambda r: len(r) >= 4, WITHIN)
            assert got[-1].type == messages.CAUGHT_UP
            assert got[-1].payload["through"] == got[2].sequence == await sync.head(database)
            assert early_consumer.applied == got[-1].payload["through"]

            # One that asks once the owner is in gets the whole log, then caught-up at once.
            await sync.on_batch(database, publisher, [declaration(late, True, True)])
            got = await eventually(lambda: list(late_got), lambda r: len(r) >= 4, WITHIN)
            assert [m.key for m in got[:3]] == ["a", "b", "c"]
            assert got[3].type == messages.CAUGHT_UP and got[3].payload["through"] == 3

            # A subscriber that is not catching up (it restarted with its data) is not told.
            await sync.on_batch(database, publisher, [declaration(late, False, False), drained()])
            await sync.on_batch(database, publisher, [post("d")])
            got = await eventually(lambda: list(late_got), lambda r: len(r) >= 5, WITHIN)
            # One queue, in order: a caught-up sent with that batch would have come before "d".
            assert [(m.type, m.key) for m in got[4:]] == [(messages.POST_UPSERTED, "d")]
        finally:
            await stopped(early_consumer)
            await stopped(late_consumer)
            publisher.close()
            await databases.close_async_clients()

    asyncio.run(scenario())
    databases.client().drop_database(name)


def test_sync_takes_turns_on_one_event_loop_after_another(chassis):
    """Sync's batches and an admin replay share the log one at a time; a process that serves
    sync on a new loop (a restart in place, a test app per test) keeps that guarantee."""
    sync, queue = chassis.sync, f"it-turns-{uuid.uuid4().hex[:6]}"

    async def scenario(name: str) -> tuple[int, int | None]:
        database = databases.async_database(name)
        await sync.setup(database)
        publisher = chassis.broker.Publisher()
        try:
            # The consumer's batches and a replay at once: each waits for the one before.
            _, replayed, _ = await asyncio.gather(
                sync.on_batch(database, publisher, [declaration(queue, False, False), post("a")]),
                sync.replay(database, publisher, queue),
                sync.on_batch(database, publisher, [post("b")]),
            )
            return await sync.head(database), replayed
        finally:
            publisher.close()
            await databases.close_async_clients()

    names = [f"it-turns-{time.time_ns()}-{n}" for n in range(2)]
    try:
        assert [asyncio.run(scenario(name)) for name in names] == [(2, 1), (2, 1)]
    finally:
        for name in names:
            databases.client().drop_database(name)


def replay_requested(queue: str, reply_to: str | None) -> Message:
    payload = {"queue": queue} if reply_to is None else {"queue": queue, "reply_to": reply_to}
    return Message(messages.REPLAY_REQUESTED, queue, time.time_ns(), payload, "worker")


def test_sync_answers_each_replay_a_task_asks_for_on_the_task_s_queue(chassis):
    """04's replay task asks by message: sync's batch handler logs the batch, then replays
    the subscriber and answers how many changes it sent (None for a queue it does not
    know); a request with nowhere to answer is dropped without keeping the others from
    theirs."""
    sync, name = chassis.sync, f"it-replays-{time.time_ns()}"
    queue, reply_to = f"it-replayed-{uuid.uuid4().hex[:6]}", f"replay-{uuid.uuid4().hex[:6]}"

    async def scenario() -> list[dict[str, Any]]:
        database = databases.async_database(name)
        await sync.setup(database)
        publisher = chassis.broker.Publisher()
        answers: list[dict[str, Any]] = []

        async def keep(message: Message) -> None:
            answers.append(message.payload)

        replies = chassis.broker.Consumer(reply_to, {messages.REPLAY_DONE: keep})
        replies.start(asyncio.get_running_loop())
        # The service's handler reads its publisher from the app, as it does when serving.
        app = Quart(__name__)
        app.extensions["service"] = SimpleNamespace(publisher=publisher)
        try:
            # One batch: the replay is answered after the batch is logged, so it counts the
            # subscriber declared and the posts logged in that same batch.
            batch = [declaration(queue, False, False), post("a"), post("b"),
                     replay_requested("it-nobody", None), replay_requested(queue, reply_to),
                     replay_requested("it-nobody", reply_to)]  # fmt: skip
            async with app.app_context():
                await chassis.sync_service._on_batch(database, batch)
            return await eventually(lambda: list(answers), lambda r: len(r) >= 2, WITHIN)
        finally:
            await stopped(replies)
            publisher.close()
            await databases.close_async_clients()

    try:
        got = asyncio.run(scenario())
        assert got == [{"queue": queue, "sent": 2}, {"queue": "it-nobody", "sent": None}]
    finally:
        databases.client().drop_database(name)


def test_a_handler_past_its_deadline_is_stopped_before_the_batch_comes_again(chassis, monkeypatch):
    """The consumer gives a batch back when its handlers overrun: the overrunning handler must
    not go on applying it on the loop, side by side with the batch's next delivery."""
    monkeypatch.setattr(chassis.broker, "HANDLER_TIMEOUT_SECONDS", 0.5)
    queue = f"it-overrun-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[list[str], list[int]]:
        attempts: list[str] = []
        finished: list[int] = []

        async def slow_the_first_time(message: Message) -> None:
            attempts.append(message.id)
            attempt = len(attempts)
            if attempt == 1:
                await asyncio.sleep(2.0)  # stuck past the consumer's deadline
            finished.append(attempt)

        publisher = chassis.broker.Publisher()
        consumer = chassis.broker.Consumer(queue, {POST_UPSERTED: slow_the_first_time})
        consumer.start(asyncio.get_running_loop())
        try:
            await publisher.publish([change("s", 1)], queue)
            await eventually(lambda: list(finished), lambda f: 2 in f, WITHIN)
            # Give the first attempt time to wake up and finish, if it still runs.
            await eventually(lambda: list(finished), lambda f: 1 in f, 3.0)
            return attempts, finished
        finally:
            await stopped(consumer)
            publisher.close()

    attempts, finished = asyncio.run(scenario())
    assert attempts == ["post.upserted/s/1", "post.upserted/s/1"]
    assert finished == [2]


def test_a_relay_round_that_cannot_publish_gives_its_claim_back(chassis, redis_url):
    """A change the broker refused is claimable again at once (not after its lease): the
    ingest worker's flush relies on it to know its posts are not out yet."""
    import redis

    outbox, name = STAGE.load("chassis.messaging.outbox"), f"it-relay-{time.time_ns()}"
    queues = redis.Redis.from_url(redis_url)

    async def scenario() -> tuple[int, int]:
        database = databases.async_database(name)
        await database.posts.insert_many([{"_id": f"r{i}", "title": "t", "version": 1,
                                           "outbox_pending": True} for i in range(3)])  # fmt: skip
        source = outbox.Source(database.posts, POST_UPSERTED, lambda d: {"title": d["title"]})
        publisher = chassis.broker.Publisher()
        relay = outbox.Relay("it", [source], publisher)
        queues.set("sync", "blocked")  # a string where the queue (a list) goes: pushes fail
        try:
            with pytest.raises(Exception, match="WRONGTYPE"):
                await relay.relay_once(source)
        finally:
            queues.delete("sync")
        try:
            sent = await relay.relay_once(source)
            return sent, await database.posts.count_documents({"outbox_pending": True})
        finally:
            publisher.close()
            await databases.close_async_clients()

    try:
        assert asyncio.run(scenario()) == (3, 0)
    finally:
        databases.client().drop_database(name)
