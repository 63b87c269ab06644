"""Storing posts says what it did: new, updated or unchanged, as the database counted it.

The counts are bulk_write's own (upserted, modified, matched), which PyMongo reports for a
real server and the embedded emulation fills the same way; these tests run on the latter.
"""

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from pymongo.database import Database

from tooling.stages import get_stage
from workshop import db as databases
from workshop import queries
from workshop.documents import Upserted
from workshop.domain.posts import normalise
from workshop.platform.messages import first_version


def post(post_id: str, **fields) -> dict:
    """Return a normalised post, as an import stores it."""
    return normalise({"id": post_id, "title": f"Post {post_id} about asyncio", "score": 10,
                      "subreddit": "python", "created_utc": 1370000000, **fields})  # fmt: skip


@pytest.fixture
def database() -> Iterator[Database]:
    name = f"test-upsert-{uuid.uuid4().hex[:8]}"
    yield databases.database(name)
    databases.client().drop_database(name)


def test_a_second_upsert_of_the_same_posts_is_unchanged(database: Database) -> None:
    assert queries.upsert_posts(database.posts, [post("aaa1"), post("bbb2")]) == Upserted(new=2)
    again = queries.upsert_posts(database.posts, [post("aaa1"), post("bbb2")])
    assert again == Upserted(unchanged=2)
    assert again.total == 2


def test_a_changed_post_is_updated_and_its_tags_are_kept(database: Database) -> None:
    queries.upsert_posts(database.posts, [post("aaa1"), post("bbb2")])
    database.posts.update_one({"_id": "aaa1"}, {"$set": {"tags": [{"tag": "fun", "count": 1}]}})
    counts = queries.upsert_posts(
        database.posts, [post("aaa1", score=99), post("bbb2"), post("ccc3")]
    )
    assert counts == Upserted(new=1, updated=1, unchanged=1)
    stored = database.posts.find_one({"_id": "aaa1"})
    assert stored["score"] == 99 and stored["tags"] == [{"tag": "fun", "count": 1}]
    assert database.posts.find_one({"_id": "ccc3"})["tags"] == []


def test_nothing_to_store_counts_nothing(database: Database) -> None:
    assert queries.upsert_posts(database.posts, []) == Upserted()


def test_03_ingest_marks_only_new_and_changed_posts_for_publishing(database: Database) -> None:
    store = get_stage("03-services").load("ingest.store")

    def pending() -> dict[str, int]:
        return {d["_id"]: d["version"] for d in database.posts.find({"outbox_pending": True})}

    before = first_version()
    assert store.upsert_posts([post("aaa1"), post("bbb2")], database) == Upserted(new=2)
    first = pending()
    assert set(first) == {"aaa1", "bbb2"}
    # A new post's version starts from the clock (an owner that lost its store and starts
    # again numbers above every version it sent before).
    assert all(version >= before for version in first.values())
    database.posts.update_many({}, {"$set": {"outbox_pending": False}})  # as the relay does

    again = store.upsert_posts([post("aaa1"), post("bbb2")], database)
    assert again == Upserted(unchanged=2)
    assert pending() == {}  # not published again

    changed = store.upsert_posts([post("aaa1"), post("bbb2", score=50)], database)
    assert changed == Upserted(updated=1, unchanged=1)
    assert pending() == {"bbb2": first["bbb2"] + 1}  # each change adds one
    assert database.posts.find_one({"_id": "bbb2"})["score"] == 50


@pytest.mark.parametrize("stage", ["03-services", "04-async"])
def test_a_batch_stored_again_counts_what_it_did_the_first_time(database: Database, stage) -> None:
    """A retried task (its worker killed after storing, before its acknowledgement) stores
    its batch again: the job's counts must still say what the batch did, not 'unchanged'."""
    store = get_stage(stage).load("ingest.store")
    handle = databases.async_database(database.name) if stage == "04-async" else database

    def upsert(posts: list[dict], batch: str) -> Upserted:
        written = store.upsert_posts(posts, handle, batch)
        return asyncio.run(written) if asyncio.iscoroutine(written) else written

    upsert([post("old1"), post("chg2")], "earlier")  # there before the job
    batch = [post("old1"), post("chg2", score=77), post("new3"), post("new4")]
    first, again = upsert(batch, "job-7-0"), upsert(batch, "job-7-0")
    assert first == again == Upserted(new=2, updated=1, unchanged=1), (first, again)
    assert upsert(batch, "job-8-0") == Upserted(unchanged=4)  # another batch: all as they are
