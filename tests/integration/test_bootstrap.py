"""A new subscriber's bootstrap, on the real Redis: sync says "caught up" after the replay,
only once the owners' start-up data is in the log, naming the last change it sent."""

import time
import uuid

import pytest

from tests.acceptance.stage import eventually
from tooling.stages import get_stage
from workshop import db as databases
from workshop.platform import messages
from workshop.platform.schemas import example

stage = get_stage("03-services")
broker = stage.load("chassis.messaging.broker")
envelope = messages
sync_store = stage.load("sync.store")
Message = envelope.Message

WITHIN = 10.0


@pytest.fixture
def sync(redis_url, monkeypatch):
    """Sync's store and publisher, on a fresh database and the real Redis."""
    monkeypatch.setenv("BROKER_URL", redis_url)
    database = databases.database(f"it-sync-{time.time_ns()}")
    sync_store.setup(database)
    publisher = broker.Publisher()
    yield database, publisher
    publisher.close()
    databases.client().drop_database(database.name)


def declaration(queue: str, replay: bool, catching_up: bool) -> Message:
    payload = {"queue": queue, "types": [envelope.POST_UPSERTED], "replay": replay,
               "catching_up": catching_up}  # fmt: skip
    return Message(envelope.SUBSCRIPTION_DECLARED, queue, time.time_ns(), payload, queue)


def post(key: str) -> Message:
    return Message(
        envelope.POST_UPSERTED, key, 1, example(envelope.POST_UPSERTED, title=key), "ingest"
    )


def drained() -> Message:
    payload = {"types": [envelope.POST_UPSERTED]}
    return Message(envelope.OUTBOX_DRAINED, "ingest", time.time_ns(), payload, "ingest")


def listen(queue: str) -> tuple[object, list[Message]]:
    received: list[Message] = []
    consumer = broker.Consumer(
        queue, {envelope.POST_UPSERTED: received.append, envelope.CAUGHT_UP: received.append}
    )
    consumer.start()
    return consumer, received


def test_caught_up_waits_for_the_owner_and_follows_the_replay(sync):
    database, publisher = sync
    early, late = f"it-early-{uuid.uuid4().hex[:6]}", f"it-late-{uuid.uuid4().hex[:6]}"
    early_consumer, early_got = listen(early)
    late_consumer, late_got = listen(late)
    try:
        # A subscriber asks for its replay before the owner has published its start-up data.
        sync_store.on_batch(database, publisher, [declaration(early, True, True)])
        sync_store.on_batch(database, publisher, [post("a"), post("b"), post("c")])
        got = eventually(lambda: list(early_got), lambda r: len(r) >= 3, within=WITHIN)
        assert [m.type for m in got] == [envelope.POST_UPSERTED] * 3, "no caught-up yet"

        sync_store.on_batch(database, publisher, [drained()])
        got = eventually(lambda: list(early_got), lambda r: len(r) >= 4, within=WITHIN)
        assert got[-1].type == envelope.CAUGHT_UP
        assert got[-1].payload["through"] == got[2].sequence == sync_store.head(database)
        assert early_consumer.applied == got[-1].payload["through"]

        # One that asks once the owner is in gets the whole log, then caught-up at once.
        sync_store.on_batch(database, publisher, [declaration(late, True, True)])
        got = eventually(lambda: list(late_got), lambda r: len(r) >= 4, within=WITHIN)
        assert [m.key for m in got[:3]] == ["a", "b", "c"]
        assert got[3].type == envelope.CAUGHT_UP and got[3].payload["through"] == 3

        # A subscriber that is not catching up (it restarted with its data) is not told.
        sync_store.on_batch(database, publisher, [declaration(late, False, False), drained()])
        sync_store.on_batch(database, publisher, [post("d")])
        got = eventually(lambda: list(late_got), lambda r: len(r) >= 5, within=WITHIN)
        # One queue, in order: a caught-up sent with that batch would have come before "d".
        assert [(m.type, m.key) for m in got[4:]] == [(envelope.POST_UPSERTED, "d")]
    finally:
        early_consumer.stop()
        late_consumer.stop()
