"""The outbox's sources in a migration (the strangler fig): a source publishes, and tells
sync its digest, only while its process owns the data, and a change goes out as every type
its source names, with one key and version."""

import uuid
from collections.abc import Iterator

import pytest
from pymongo.database import Database

from tooling.stages import get_stage
from workshop import db as databases
from workshop.platform.messages import ACCOUNT_CHANGED, OUTBOX_DRAINED, PREFERENCES_UPDATED


class Recorder:
    """A publisher that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list = []

    def publish(self, messages, queue_name, after=None) -> None:
        self.sent.extend(messages)


@pytest.fixture
def database() -> Iterator[Database]:
    name = f"test-ownership-{uuid.uuid4().hex[:8]}"
    yield databases.database(name)
    databases.client().drop_database(name)


def test_only_the_owner_publishes_and_announces_and_each_type_goes_out(database):
    outbox = get_stage("03-services").load("chassis.messaging.outbox")
    owns = {"now": False}
    source = outbox.Source(
        database.users,
        PREFERENCES_UPDATED,
        lambda u: {"user": u["_id"], "topics": u["topics"]},
        also=((ACCOUNT_CHANGED, lambda u: {"password_hash": "h", "topics": u["topics"]}),),
        active=lambda: owns["now"],
    )
    publisher = Recorder()
    relay = outbox.Relay("monolith", [source], publisher)
    database.users.insert_one({"_id": "ada", "topics": ["ml"], "version": 7,
                               "outbox_pending": True})  # fmt: skip
    assert relay.sources == [] and relay.pending() == 0, "not its data yet: nothing waits"
    assert relay.digests() == {}
    relay.announce_drained()
    assert publisher.sent[-1].payload["types"] == [], "it tells sync of no type it does not own"
    owns["now"] = True
    assert relay.pending() == 1
    assert relay.relay_once(source) == 2
    sent = {m.type: m for m in publisher.sent if m.type != OUTBOX_DRAINED}
    assert set(sent) == {PREFERENCES_UPDATED, ACCOUNT_CHANGED}
    assert {(m.key, m.version) for m in sent.values()} == {("ada", 7)}, "one change, two types"
    assert relay.pending() == 0
    assert relay.digests() == {PREFERENCES_UPDATED: [1, 7], ACCOUNT_CHANGED: [1, 7]}
    relay.announce_drained()
    assert publisher.sent[-1].payload["types"] == [PREFERENCES_UPDATED, ACCOUNT_CHANGED]
