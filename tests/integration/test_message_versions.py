"""A consumer reads the versions it says it reads, on real Redis, in 03 (threads) and 04
(the event loop): a message of another version, or one whose payload breaks its schema,
goes to the queue's dead-letter queue with the reason, and the rest of its batch is applied.
"""

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

from tests.timing import scaled
from tooling.stages import get_stage
from workshop.platform import broker
from workshop.platform.messages import POST_UPSERTED, Message
from workshop.platform.schemas import dead_letter_queue, example

STAGES = ["03-services", "04-async"]
WITHIN = 10.0


def post(key: str, version: int, **fields: Any) -> Message:
    payload = example(POST_UPSERTED, version, title=key, **fields)
    return Message(POST_UPSERTED, key, 1, payload, "test", schema_version=version)


def consume(stage: str, queue: str, reads: dict[str, tuple[int, ...]], sent: list[Message],
            expected: int, failures: int = 0) -> tuple[list[Message], Any]:  # fmt: skip
    """Publish `sent` as one batch to a new queue; run the stage's consumer on it until it
    has taken `expected` messages and refused the rest; return what its handler got. The
    handler fails its first `failures` calls (the batch comes again)."""
    chassis = get_stage(stage).load("chassis.messaging.broker")
    got: list[Message] = []
    calls: list[str] = []
    done = threading.Event()

    def note(message: Message) -> None:
        calls.append(message.id)
        if len(calls) <= failures:
            raise RuntimeError("the store is down")
        got.append(message)

    async def note_async(message: Message) -> None:
        note(message)

    async def run_async() -> Any:
        consumer = chassis.Consumer(queue, {POST_UPSERTED: note_async}, reads=reads)
        consumer.start(asyncio.get_running_loop())
        await chassis.Publisher().publish(sent, queue)
        deadline = time.monotonic() + scaled(WITHIN)
        while consumer.handled < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(consumer.stop)
        return consumer

    if stage == "04-async":
        consumer = asyncio.run(run_async())
    else:
        consumer = chassis.Consumer(queue, {POST_UPSERTED: note}, reads=reads)
        consumer.start()
        chassis.Publisher().publish(sent, queue)
        deadline = time.monotonic() + scaled(WITHIN)
        while consumer.handled < len(sent) and time.monotonic() < deadline:
            done.wait(0.05)
        consumer.stop()
    assert consumer.handled == len(sent), "the whole batch was acknowledged"
    assert len(got) == expected
    return got, consumer


def dead_letters(queue: str) -> list[dict[str, Any]]:
    """Take every message from a queue's dead-letter queue."""
    found: list[dict[str, Any]] = []
    with broker.connect() as connection:
        dead = connection.SimpleQueue(broker.queue(dead_letter_queue(queue)))
        try:
            while True:
                try:
                    message = dead.get(timeout=0.5)
                except dead.Empty:
                    return found
                found.extend(message.payload["messages"])
                message.ack()
        finally:
            dead.close()


@pytest.fixture
def on_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BROKER_URL", redis_url)
    return redis_url


@pytest.mark.parametrize("stage", STAGES)
def test_a_reader_of_v1_refuses_v2_and_a_broken_payload_and_takes_the_rest(on_redis, stage):
    queue = f"it-versions-{uuid.uuid4().hex[:6]}"
    broken = post("broken", 1, score="high")  # an integer in every version
    sent = [post("old", 1), post("new", 2), broken, post("also-old", 1)]
    got, consumer = consume(stage, queue, {}, sent, expected=2)
    assert [m.key for m in got] == ["old", "also-old"]
    refused = dead_letters(queue)
    assert [(m["key"], m["schema_version"]) for m in refused] == [("new", 2), ("broken", 1)]
    assert "this consumer reads version 1" in refused[0]["refused"]
    assert "score" in refused[1]["refused"], refused[1]["refused"]
    assert consumer.refused == {(POST_UPSERTED, 2): 1, (POST_UPSERTED, 1): 1}
    assert consumer.read == {(POST_UPSERTED, 1): 2}
    assert consumer.last_refusal == refused[1]["refused"]


@pytest.mark.parametrize("stage", STAGES)
def test_a_reader_of_both_versions_takes_both(on_redis, stage):
    queue = f"it-versions-{uuid.uuid4().hex[:6]}"
    sent = [post("old", 1), post("new", 2)]
    got, consumer = consume(stage, queue, {POST_UPSERTED: (1, 2)}, sent, expected=2)
    assert [(m.key, m.schema_version) for m in got] == [("old", 1), ("new", 2)]
    assert got[1].payload["upvote_ratio"] == example(POST_UPSERTED, 2)["upvote_ratio"]
    assert dead_letters(queue) == [] and not consumer.refused


@pytest.mark.parametrize("stage", STAGES)
def test_a_batch_that_fails_and_comes_again_is_refused_once(on_redis, stage):
    queue = f"it-versions-{uuid.uuid4().hex[:6]}"
    sent = [post("old", 1), post("new", 2)]
    got, consumer = consume(stage, queue, {}, sent, expected=1, failures=2)
    assert [m.key for m in got] == ["old"]
    assert [m["key"] for m in dead_letters(queue)] == ["new"], "sent once, after it applied"
    assert consumer.refused == {(POST_UPSERTED, 2): 1} and consumer.read == {(POST_UPSERTED, 1): 1}
