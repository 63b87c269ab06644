"""All of the monolith's data access: the only module that touches MongoDB.

One database holds everything (posts, taggings, users, jobs): simple, and exactly the
coupling the next stages take apart.
"""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pymongo
from flask import Flask, current_app, g
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from workshop import db as databases
from workshop.domain import posts as post_model
from workshop.domain import recommend as recommender
from workshop.domain import search as searching
from workshop.domain.tags import count_tags

DUPLICATE_KEY = 11000
# Just what ranking needs, so a query copies little per candidate.
_RANKING_FIELDS = {"score": 1, "ups": 1, "downs": 1, "num_comments": 1, "topics": 1, "tags": 1}


def get_db() -> Database:
    """Return the app's database, opened once per request."""
    if "db" not in g:
        g.db = databases.database(current_app.config["DATABASE_NAME"])
    return g.db


def init_app(app: Flask) -> None:
    """Create the indexes every query below relies on."""
    with app.app_context():
        create_indexes(get_db())


def create_indexes(database: Database) -> None:
    """Create indexes: terms (multikey, for search), score, tags, and the taggings key."""
    database.posts.create_index("terms")
    database.posts.create_index([("score", pymongo.DESCENDING)])
    database.posts.create_index("tags.tag")
    database.taggings.create_index(
        [("post_id", 1), ("tag", 1), ("user", 1)], unique=True, name="one_tag_per_user"
    )
    database.taggings.create_index("user")


def _public(document: dict[str, Any]) -> dict[str, Any]:
    return post_model.public({**document, "id": document["_id"]})


# --- posts -------------------------------------------------------------------------------


def upsert_posts(posts: Iterable[dict[str, Any]]) -> int:
    """Store posts keyed by reddit id; tags stay as users left them. Return how many."""
    documents = {post["id"]: _document(post) for post in posts}
    existing = {
        d["_id"] for d in get_db().posts.find({"_id": {"$in": list(documents)}}, {"_id": 1})
    }
    for post_id in existing:
        fields = {k: v for k, v in documents[post_id].items() if k not in ("_id", "tags")}
        get_db().posts.update_one({"_id": post_id}, {"$set": fields})
    new = [doc for post_id, doc in documents.items() if post_id not in existing]
    if new:
        # ordered=False: a post inserted meanwhile by another import is a duplicate, not an error
        try:
            get_db().posts.insert_many(new, ordered=False)
        except BulkWriteError as error:
            if any(e["code"] != DUPLICATE_KEY for e in error.details["writeErrors"]):
                raise
    return len(documents)


def _document(post: dict[str, Any]) -> dict[str, Any]:
    """Return the stored form of a post: keyed by id, with its search terms."""
    fields = {k: v for k, v in post.items() if k != "id"}
    return {"_id": post["id"], **fields, "terms": post_model.search_terms(post)}


def count_posts() -> int:
    """Return how many posts are stored."""
    return get_db().posts.count_documents({})


def get_post(post_id: str) -> dict[str, Any] | None:
    """Return one post, or None."""
    document = get_db().posts.find_one({"_id": post_id})
    return _public(document) if document else None


def _posts_by_ids(ids: list[str]) -> list[dict[str, Any]]:
    """Return full posts for ids, in the order of the ids."""
    found = {d["_id"]: d for d in get_db().posts.find({"_id": {"$in": ids}})}
    return [_public(found[i]) for i in ids if i in found]


def search(terms: list[str], page: int, per_page: int) -> tuple[int, list[dict[str, Any]]]:
    """Return (total, one page of posts) matching any of the terms, best first."""
    candidates = get_db().posts.find({"terms": {"$in": terms}}, {"score": 1, "terms": 1})
    ranked = searching.rank(({**c, "id": c["_id"]} for c in candidates), terms)
    return len(ranked), _posts_by_ids(ranked[searching.page_slice(page, per_page)])


def recommendations(topics: list[str], limit: int) -> list[dict[str, Any]]:
    """Return recommended posts, the user's topics first when given."""
    candidates = get_db().posts.find(
        {"score": {"$gte": recommender.SCORE_THRESHOLD}}, _RANKING_FIELDS
    )
    best = recommender.recommend(({**c, "id": c["_id"]} for c in candidates), topics, limit)
    return _posts_by_ids([post["id"] for post in best])


# --- tags --------------------------------------------------------------------------------


def add_tag(post_id: str, tag: str, user: str) -> None:
    """Record that a user gave a post a tag (again is fine: nothing changes)."""
    try:
        get_db().taggings.insert_one({"post_id": post_id, "tag": tag, "user": user})
    except DuplicateKeyError:
        return
    _recount_tags(post_id)


def remove_tag(post_id: str, tag: str, user: str) -> None:
    """Withdraw a user's tag from a post (absent is fine: nothing changes)."""
    if get_db().taggings.delete_one({"post_id": post_id, "tag": tag, "user": user}).deleted_count:
        _recount_tags(post_id)


def _recount_tags(post_id: str) -> None:
    """Store a post's tag counts, recounted from the taggings (right even if two race)."""
    tags = [t["tag"] for t in get_db().taggings.find({"post_id": post_id}, {"tag": 1})]
    get_db().posts.update_one({"_id": post_id}, {"$set": {"tags": count_tags(tags)}})


def user_tags(post_id: str, user: str) -> list[str]:
    """Return the tags a user gave a post."""
    taggings = get_db().taggings.find({"post_id": post_id, "user": user}, {"tag": 1})
    return sorted(t["tag"] for t in taggings)


def tag_counts(limit: int = 0) -> list[dict[str, Any]]:
    """Return every tag with the number of posts carrying it, most used first."""
    pipeline: list[dict[str, Any]] = [
        {"$group": {"_id": {"tag": "$tag", "post": "$post_id"}}},
        {"$group": {"_id": "$_id.tag", "count": {"$sum": 1}}},
        {"$sort": {"count": -1, "_id": 1}},
    ]
    if limit:
        pipeline.append({"$limit": limit})
    return [{"tag": r["_id"], "count": r["count"]} for r in get_db().taggings.aggregate(pipeline)]


def posts_with_tag(tag: str) -> list[dict[str, Any]]:
    """Return the posts carrying a tag, most popular first, ties by id."""
    documents = (
        get_db()
        .posts.find({"tags.tag": tag})
        .sort([("score", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)])
    )
    return [_public(d) for d in documents]


# --- users -------------------------------------------------------------------------------


def create_user(username: str, password_hash: str) -> bool:
    """Store a new user; return False if the name is taken."""
    try:
        get_db().users.insert_one(
            {"_id": username, "password_hash": password_hash, "topics": [], "created_at": _now()}
        )
    except DuplicateKeyError:
        return False
    return True


def get_user(username: str) -> dict[str, Any] | None:
    """Return a user's record (with the password hash: never send it out), or None."""
    return get_db().users.find_one({"_id": username})


def set_topics(username: str, topics: list[str]) -> None:
    """Store a user's preferred topics."""
    get_db().users.update_one({"_id": username}, {"$set": {"topics": topics}})


def get_topics(username: str | None) -> list[str]:
    """Return a user's preferred topics (none for a visitor)."""
    if username is None:
        return []
    user = get_db().users.find_one({"_id": username}, {"topics": 1})
    return list(user["topics"]) if user else []


# --- ingest jobs -------------------------------------------------------------------------


def create_job(description: str) -> str:
    """Record a new ingest job as running and return its id."""
    job_id = uuid.uuid4().hex
    get_db().jobs.insert_one(
        {"_id": job_id, "state": "running", "ingested": 0, "rejected": 0,
         "source": description, "created_at": _now()}
    )  # fmt: skip
    return job_id


def finish_job(job_id: str, ingested: int, rejected: int, error: str | None = None) -> None:
    """Record how a job ended."""
    fields: dict[str, Any] = {"ingested": ingested, "rejected": rejected, "finished_at": _now()}
    fields["state"] = "failed" if error else "done"
    if error:
        fields["error"] = error
    get_db().jobs.update_one({"_id": job_id}, {"$set": fields})


def get_job(job_id: str) -> dict[str, Any] | None:
    """Return a job's public state, or None."""
    job = get_db().jobs.find_one({"_id": job_id})
    if job is None:
        return None
    answer = {k: job[k] for k in ("state", "ingested", "rejected", "source")}
    if "error" in job:
        answer["error"] = job["error"]
    return {"id": job["_id"], **answer}


def _now() -> datetime:
    return datetime.now(UTC)
