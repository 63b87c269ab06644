"""The broker on real Redis: durable queues, at-least-once, idempotent consumers."""

import random
import time

import pytest

from tests.acceptance.stage import eventually
from tooling.stages import get_stage
from workshop import db as databases
from workshop.platform.messages import POST_UPSERTED, TAGS_CHANGED, Message
from workshop.platform.schemas import example

# The broker is stage 03's, from its chassis.
stage = get_stage("03-services")
Consumer = stage.load("chassis.messaging.broker").Consumer
Publisher = stage.load("chassis.messaging.broker").Publisher
apply_versioned = stage.load("chassis.messaging.inbox").apply_versioned

WITHIN = 10.0


@pytest.fixture
def broker(redis_url, monkeypatch):
    monkeypatch.setenv("BROKER_URL", redis_url)
    publisher = Publisher()
    yield publisher
    publisher.close()


def change(key: str, version: int, kind: str = POST_UPSERTED) -> Message:
    payload = (
        example(POST_UPSERTED, 1, title=f"{key} v{version}")
        if kind == POST_UPSERTED
        else {"tags": [{"tag": "t", "count": version}]}
    )
    return Message(kind, key, version, payload, "test", schema_version=1)  # what Consumer reads


def test_a_stopped_consumer_receives_everything_published_meanwhile(broker):
    received: list[str] = []
    consumer = Consumer("it-durable", {POST_UPSERTED: lambda m: received.append(m.id)})
    consumer.start()
    broker.publish([change("a", 1)], "it-durable")
    assert eventually(lambda: list(received), lambda r: r == ["post.upserted/a/1"], within=WITHIN)
    consumer.stop()

    sent = [change(f"k{i}", 1) for i in range(40)]
    for start in range(0, 40, 10):
        broker.publish(sent[start : start + 10], "it-durable")
    assert broker.backlog("it-durable") == 4, "the batches wait in Redis while nobody listens"

    restarted = Consumer("it-durable", {POST_UPSERTED: lambda m: received.append(m.id)})
    restarted.start()
    try:
        got = eventually(lambda: set(received), lambda r: len(r) == 41, within=WITHIN)
    finally:
        restarted.stop()
    assert got == {"post.upserted/a/1"} | {m.id for m in sent}


def test_a_failing_handler_gets_the_message_again(broker):
    attempts: list[str] = []

    def flaky(message: Message) -> None:
        attempts.append(message.id)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")

    consumer = Consumer("it-retry", {POST_UPSERTED: flaky})
    consumer.start()
    try:
        broker.publish([change("x", 1)], "it-retry")
        assert eventually(lambda: list(attempts), lambda a: len(a) == 2, within=WITHIN) == [
            "post.upserted/x/1", "post.upserted/x/1",
        ]  # fmt: skip
    finally:
        consumer.stop()


def test_duplicates_and_reordering_leave_the_same_state(broker):
    """Deliver every version of every post, shuffled and twice over: the newest wins."""
    database = databases.database(f"it-idempotent-{time.time_ns()}")

    def on_post(message: Message) -> None:
        apply_versioned(
            database.posts, message.key, message.version, message.payload, "post_version"
        )

    def on_tags(message: Message) -> None:
        apply_versioned(
            database.posts, message.key, message.version, message.payload, "tags_version"
        )

    messages = [change(f"p{p}", v, kind) for p in range(20) for v in range(1, 4)
                for kind in (POST_UPSERTED, TAGS_CHANGED)]  # fmt: skip
    shuffled = messages * 2
    random.Random(7).shuffle(shuffled)
    consumer = Consumer("it-order", {POST_UPSERTED: on_post, TAGS_CHANGED: on_tags})
    consumer.start()
    try:
        for start in range(0, len(shuffled), 25):
            broker.publish(shuffled[start : start + 25], "it-order")
        handled = eventually(lambda: consumer.handled, lambda n: n == len(shuffled), within=WITHIN)
        assert handled == len(shuffled)
    finally:
        consumer.stop()
    documents = list(database.posts.find().sort("_id", 1))
    assert len(documents) == 20
    for document in documents:
        assert document["title"] == f"{document['_id']} v3" and document["post_version"] == 3
        assert document["tags"] == [{"tag": "t", "count": 3}] and document["tags_version"] == 3
    databases.client().drop_database(database.name)


def test_a_relay_round_that_cannot_publish_gives_its_claim_back(broker, redis_url):
    """A change the broker refused is claimable again at once (not after its lease)."""
    import redis

    outbox = stage.load("chassis.messaging.outbox")
    database = databases.database(f"it-relay-{time.time_ns()}")
    database.posts.insert_many([{"_id": f"r{i}", "title": "t", "version": 1,
                                 "outbox_pending": True} for i in range(3)])  # fmt: skip
    source = outbox.Source(database.posts, POST_UPSERTED, lambda d: {"title": d["title"]})
    relay = outbox.Relay("it", [source], broker)
    queues = redis.Redis.from_url(redis_url)
    queues.set("sync", "blocked")  # a string where the queue (a list) goes: pushes fail
    try:
        with pytest.raises(Exception, match="WRONGTYPE"):
            relay.relay_once(source)
    finally:
        queues.delete("sync")
    assert relay.relay_once(source) == 3
    assert database.posts.count_documents({"outbox_pending": True}) == 0
    databases.client().drop_database(database.name)
