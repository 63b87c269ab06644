"""The async facade over the embedded emulation answers what the blocking API answers.

Each scenario runs the same operations twice, on two fresh databases: once through the
blocking handle (`db.database`), once through the async one (`db.async_database`, the
facade when MONGO_URL is unset, PyMongo's AsyncMongoClient when it is set).
"""

import asyncio
import inspect
import uuid
from typing import Any

import pytest

from workshop import db as databases

POSTS = [
    {"_id": f"p{i}", "score": i * 10, "terms": ["async", f"t{i % 3}"], "title": f"Post {i}"}
    for i in range(12)
]


async def maybe(value: Any) -> Any:
    """Await a value if it is awaitable (the async API), else return it (the blocking one)."""
    return await value if inspect.isawaitable(value) else value


async def listed(cursor: Any) -> list[dict[str, Any]]:
    # Both APIs have to_list() (PyMongo 4.9 on); the async one's is awaited.
    return await maybe(cursor.to_list())


async def scenario(database: Any) -> list[Any]:
    """The calls the 04 services make, each answer recorded."""
    posts, taggings = database["posts"], database["taggings"]
    answers: list[Any] = []
    await maybe(posts.create_index("terms"))
    await maybe(posts.insert_many([dict(p) for p in POSTS]))
    await maybe(posts.insert_one({"_id": "extra", "score": 3, "terms": []}))
    answers.append(await maybe(posts.count_documents({"score": {"$gte": 50}})))
    answers.append(await maybe(posts.estimated_document_count()))
    answers.append(await maybe(posts.find_one({"_id": "p3"}, {"terms": 0})))
    answers.append(await maybe(posts.find_one({"_id": "nope"})))
    answers.append(await listed(posts.find({"terms": {"$in": ["t1"]}}, {"score": 1}).sort(
        [("score", -1), ("_id", 1)]).skip(1).limit(2)))  # fmt: skip
    updated = await maybe(posts.update_one({"_id": "p1"}, {"$set": {"x": 1}, "$inc": {"v": 1}}))
    answers.append((updated.matched_count, updated.modified_count))
    upserted = await maybe(posts.update_one({"_id": "new"}, {"$set": {"x": 2}}, upsert=True))
    answers.append(upserted.upserted_id)
    many = await maybe(posts.update_many({"score": {"$lt": 30}}, {"$set": {"low": True}}))
    answers.append(many.modified_count)
    claimed = await maybe(posts.find_one_and_update(
        {"low": True}, {"$set": {"owner": "me"}}, sort=[("_id", 1)]))  # fmt: skip
    answers.append(claimed["_id"])
    deleted = await maybe(posts.delete_one({"_id": "extra"}))
    answers.append(deleted.deleted_count)
    await maybe(taggings.insert_many([
        {"post_id": "p1", "tag": "a"}, {"post_id": "p2", "tag": "a"}, {"post_id": "p2", "tag": "b"}
    ]))  # fmt: skip
    pipeline = [{"$group": {"_id": "$tag", "count": {"$sum": 1}}}, {"$sort": {"count": -1}}]
    answers.append(await listed(await maybe(taggings.aggregate(pipeline))))
    answers.append(sorted(await maybe(database.list_collection_names())))
    found = []
    cursor = posts.find({"low": True}, {"_id": 1}).sort("_id", 1)
    if hasattr(cursor, "__aiter__"):
        async for document in cursor:
            found.append(document)
    else:
        found = list(cursor)
    answers.append(found)
    return answers


def test_the_facade_answers_as_the_blocking_api_does():
    blocking = databases.database(f"facade-sync-{uuid.uuid4().hex[:8]}")
    name = f"facade-async-{uuid.uuid4().hex[:8]}"

    async def run_async() -> list[Any]:
        try:
            return await scenario(databases.async_database(name))
        finally:
            await databases.close_async_clients()

    try:
        assert asyncio.run(scenario(blocking)) == asyncio.run(run_async())
    finally:
        blocking.client.drop_database(blocking.name)
        databases.database(name).client.drop_database(name)


def test_the_facade_refuses_a_call_it_does_not_cover():
    facade = databases.async_database(f"facade-{uuid.uuid4().hex[:8]}")
    if not isinstance(facade, databases.AsyncFacade):
        pytest.skip("MONGO_URL is set: the real async client covers every call")
    with pytest.raises(AttributeError, match="add it if a service needs it"):
        facade.posts.rename("other")


def test_the_async_and_blocking_handles_share_the_embedded_data():
    name = f"facade-shared-{uuid.uuid4().hex[:8]}"
    databases.database(name).posts.insert_one({"_id": "a"})

    async def read() -> Any:
        found = await databases.async_database(name).posts.find_one({"_id": "a"})
        await databases.close_async_clients()
        return found

    try:
        assert asyncio.run(read()) == {"_id": "a"}
    finally:
        databases.database(name).client.drop_database(name)
