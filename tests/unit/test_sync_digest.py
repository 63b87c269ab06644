"""Sync's digest of its log agrees with the owner's after sync is killed at any point.

Sync logs a change, then counts it in its digest (entities, sum of their latest versions):
two writes, with no transaction between. A sync killed between them gets the change again
from the broker (it never acknowledged it): the change is a duplicate by then, and must
still be counted once. And an owner's digest that differs once (a change counted while it
was being published) is no loss: sync asks for a type again only when the same digest
comes twice.
"""

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database

from tooling.stages import get_stage
from workshop import db as databases
from workshop.platform.messages import POST_UPSERTED, Message, digest

STAGES = ["03-services", "04-async"]


@pytest.fixture
def database() -> Iterator[Database]:
    name = f"test-digest-{uuid.uuid4().hex[:8]}"
    yield databases.database(name)
    databases.client().drop_database(name)


class Sync:
    """A stage's sync store, called the same way for 03 (threads) and 04 (asyncio)."""

    def __init__(self, stage: str, database: Database) -> None:
        self.store = get_stage(stage).load("sync.store")
        self.handle = databases.async_database(database.name) if stage == "04-async" else database

    def __getattr__(self, name: str) -> Any:
        function = getattr(self.store, name)

        def call(*args: Any) -> Any:
            result = function(self.handle, *args)
            return asyncio.run(result) if asyncio.iscoroutine(result) else result

        return call


def change(key: str, version: int) -> Message:
    return Message(POST_UPSERTED, key, version, {"id": key, "title": key}, "ingest")


@pytest.mark.parametrize("stage", STAGES)
def test_a_change_logged_but_not_counted_is_counted_when_it_comes_again(database, stage):
    sync = Sync(stage, database)
    sync.setup()
    for key, version in (("a", 5), ("b", 7)):
        sync.append(change(key, version))
    # Killed after logging "c" and before counting it: the log has it, the digest does not.
    database.log.insert_one({"_id": change("c", 3).id, "seq": 99, "type": POST_UPSERTED,
                             "message": change("c", 3).with_sequence(99).to_dict()})  # fmt: skip
    assert sync.log_digest(POST_UPSERTED) == digest([5, 7])

    # The broker gives the batch back: "c" is a duplicate now, and counted.
    assert sync.append(change("c", 3)) is None
    assert sync.log_digest(POST_UPSERTED) == digest([5, 7, 3])
    assert sync.append(change("c", 3)) is None  # once
    assert sync.log_digest(POST_UPSERTED) == digest([5, 7, 3])


@pytest.mark.parametrize("stage", STAGES)
def test_a_start_counts_the_digest_again_from_the_latest_versions(database, stage):
    sync = Sync(stage, database)
    sync.setup()
    for key, version in (("a", 5), ("a", 6), ("b", 7)):
        sync.append(change(key, version))
    # Killed after noting b's version 8 as the latest and before counting it.
    database.log.insert_one({"_id": change("b", 8).id, "seq": 99, "type": POST_UPSERTED,
                             "message": change("b", 8).with_sequence(99).to_dict()})  # fmt: skip
    database.latest.update_one({"_id": f"{POST_UPSERTED}/b"}, {"$max": {"version": 8}})
    assert sync.log_digest(POST_UPSERTED) == digest([6, 7])

    sync.setup()  # sync starts again
    assert sync.log_digest(POST_UPSERTED) == digest([6, 8])
    assert sync.append(change("b", 8)) is None  # given back by the broker: nothing to add
    assert sync.log_digest(POST_UPSERTED) == digest([6, 8])


@pytest.mark.parametrize("stage", STAGES)
def test_the_owner_is_asked_again_only_for_the_same_digest_twice(database, stage):
    sync = Sync(stage, database)
    sync.setup()
    sync.append(change("a", 5))
    # The owner counted b (version 2) while publishing it: a difference, not yet a loss.
    ahead = {POST_UPSERTED: digest([5, 2])}
    assert sync.drained([POST_UPSERTED], {POST_UPSERTED: 2}, ahead) == []
    assert sync.waiting() == 1  # not settled while they differ
    sync.append(change("b", 2))  # it arrives
    assert sync.drained([POST_UPSERTED], {POST_UPSERTED: 2}, ahead) == []
    assert sync.waiting() == 0

    # The broker lost c: the owner, idle, says the same digest twice; the log lacks it.
    lost = {POST_UPSERTED: digest([5, 2, 4])}
    assert sync.drained([POST_UPSERTED], {POST_UPSERTED: 3}, lost) == []
    assert sync.drained([POST_UPSERTED], {POST_UPSERTED: 3}, lost) == [POST_UPSERTED]
    assert sync.waiting() == 1


@pytest.mark.parametrize("stage", STAGES)
def test_a_digest_left_short_by_a_failed_handler_is_counted_again_before_asking(database, stage):
    """A handler that raised between noting b's version and counting it (the batch comes
    back as a duplicate) leaves the digest short while sync runs on: sync counts it again
    from `latest` before it asks the owner for everything."""
    sync = Sync(stage, database)
    sync.setup()
    sync.append(change("a", 5))
    database.log.insert_one({"_id": change("b", 2).id, "seq": 99, "type": POST_UPSERTED,
                             "message": change("b", 2).with_sequence(99).to_dict()})  # fmt: skip
    database.latest.update_one({"_id": f"{POST_UPSERTED}/b"}, {"$max": {"version": 2}},
                               upsert=True)  # fmt: skip
    assert sync.append(change("b", 2)) is None  # the batch again: a duplicate, not counted
    owner = {POST_UPSERTED: digest([5, 2])}
    assert sync.drained([POST_UPSERTED], {POST_UPSERTED: 2}, owner) == []
    assert sync.drained([POST_UPSERTED], {POST_UPSERTED: 2}, owner) == []  # counted, agrees
    assert sync.log_digest(POST_UPSERTED) == digest([5, 2])
    assert sync.waiting() == 0
