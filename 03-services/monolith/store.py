"""The monolith's data access: stage 01's store, one database, plus an outbox.

What is new next to 01-monolith/front/store.py (`workshop diff 01-monolith/front
03-services/monolith` pairs them): each write also marks what it changed for publishing, in
the same single-document write (the outbox of chassis/messaging/outbox.py), and `outbox`
names what the relay publishes: a post's current state, a post's tag counts and who gave
them, a user's preferences and account. The first three are the very messages the
services' owners publish, so search and recommend cannot tell the monolith from them; the
other two are for the services that will own that data (taggings.changed, account.changed).
"""

import uuid
from collections.abc import Iterable
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from chassis import strangler
from chassis.messaging.outbox import Source, changed, created, nudge
from chassis.service import Database, get_db
from workshop import config, ingestion, job_records, queries
from workshop.documents import Upserted, counted, stored_post, with_rank
from workshop.platform.messages import (
    ACCOUNT_CHANGED,
    POST_UPSERTED,
    PREFERENCES_UPDATED,
    TAGGINGS_CHANGED,
    TAGS_CHANGED,
    first_version,
    post_upserted,
)


def setup(database: Database) -> None:
    """Create the indexes every query below relies on; load the sample into an empty store."""
    queries.create_post_indexes(database.posts)
    queries.create_ranking_indexes(database.posts)
    queries.create_tagging_indexes(database.taggings, database.tag_totals)
    queries.count_tags_once(database.taggings, database.tag_totals)
    if config.env("WORKSHOP_SEED_SAMPLE", "1") == "1" and database.posts.count_documents({}) == 0:
        upsert_posts(ingestion.sample().posts, database)


def outbox(database: Database) -> list[Source]:
    """What the monolith publishes: everything it owns, as the owners in stage 03 do, until
    the verb that will own it has moved (`workshop strangler move`). Where a copy needs
    less than the new owner, the same change goes out twice: the copy's type, and the
    owner's (`also`)."""
    return [
        Source(database.posts, POST_UPSERTED, post_upserted,
               active=lambda: not strangler.has_moved("ingest")),
        # A post's tags as they are when published: the mark says "changed", the taggings
        # say what they are now (a later change marks the post again, with a newer version).
        Source(database.counts, TAGS_CHANGED,
               lambda d: {"tags": queries.tags_of_post(database.taggings, d["_id"])},
               also=((TAGGINGS_CHANGED, lambda d: {"taggings": _taggers(database, d["_id"])}),),
               active=lambda: not strangler.has_moved("tag")),
        Source(database.users, PREFERENCES_UPDATED,
               lambda u: {"user": u["_id"], "topics": u["topics"]},
               also=((ACCOUNT_CHANGED,
                      lambda u: {"password_hash": u["password_hash"], "topics": u["topics"]}),),
               active=lambda: not strangler.has_moved("users")),
    ]  # fmt: skip


def _taggers(database: Database, post_id: str) -> dict[str, list[str]]:
    """Return who gave a post each of its tags."""
    taggers: dict[str, list[str]] = {}
    for tagging in database.taggings.find({"post_id": post_id}, {"tag": 1, "user": 1}):
        taggers.setdefault(tagging["tag"], []).append(tagging["user"])
    return {tag: sorted(users) for tag, users in sorted(taggers.items())}


# --- posts -------------------------------------------------------------------------------


def upsert_posts(posts: Iterable[dict[str, Any]], database: Database | None = None) -> Upserted:
    """Store posts keyed by reddit id; tags stay as users left them. Say what changed.
    Each new or changed post is marked for publishing; one stored as it is stays unmarked."""
    collection = (database if database is not None else get_db()).posts
    batch = uuid.uuid4().hex
    documents = {p["id"]: with_rank(stored_post(p)) for p in posts}
    fields = {post_id: {k: v for k, v in d.items() if k not in ("_id", "tags")}
              for post_id, d in documents.items()}  # fmt: skip
    first = first_version()
    inserted = queries.upsert_each(
        collection,
        [
            UpdateOne(
                {"_id": post_id},
                created({**fields[post_id], "tags": [], "stored_by": batch}, first),
                upsert=True,
            )
            for post_id in documents
        ],
    ).inserted
    new = set(inserted)
    # Only a post one of whose fields differs matches, so only it is changed and marked.
    queries.upsert_each(
        collection,
        [
            UpdateOne(
                {"_id": post_id, "$or": [{k: {"$ne": v}} for k, v in fields[post_id].items()]},
                changed({**fields[post_id], "changed_by": batch}),
            )
            for post_id in documents
            if post_id not in new
        ],
    )
    nudge()
    stored = collection.find({"_id": {"$in": list(documents)}}, {"stored_by": 1, "changed_by": 1})
    return counted(stored, batch)


def get_post(post_id: str) -> dict[str, Any] | None:
    """Return one post, or None."""
    return queries.get_post(get_db().posts, post_id)


def search(terms: list[str], page: int, per_page: int) -> tuple[int, list[dict[str, Any]]]:
    """Return (total, one page of posts) matching any of the terms, best first."""
    return queries.search(get_db().posts, terms, page, per_page)


def recommendations(topics: list[str], limit: int) -> list[dict[str, Any]]:
    """Return recommended posts, the user's topics first when given."""
    return queries.recommendations(get_db().posts, topics, limit)


# --- tags --------------------------------------------------------------------------------


def add_tag(post_id: str, tag: str, user: str) -> None:
    """Record that a user gave a post a tag (again is fine: nothing changes)."""
    try:
        get_db().taggings.insert_one({"post_id": post_id, "tag": tag, "user": user})
    except DuplicateKeyError:
        return
    _recount_tags(post_id, tag)


def remove_tag(post_id: str, tag: str, user: str) -> None:
    """Withdraw a user's tag from a post (absent is fine: nothing changes)."""
    if get_db().taggings.delete_one({"post_id": post_id, "tag": tag, "user": user}).deleted_count:
        _recount_tags(post_id, tag)


def _recount_tags(post_id: str, tag: str) -> None:
    queries.store_tag_counts(get_db().posts, get_db().taggings, post_id)
    queries.store_tag_total(get_db().taggings, get_db().tag_totals, tag)
    # The post's tags changed: mark them for publishing (their first version from the clock).
    counts = get_db().counts
    counts.update_one({"_id": post_id}, {"$setOnInsert": {"version": first_version()}}, upsert=True)
    counts.update_one({"_id": post_id}, changed({}))
    nudge()


def user_tags(post_id: str, user: str) -> list[str]:
    """Return the tags a user gave a post."""
    taggings = get_db().taggings.find({"post_id": post_id, "user": user}, {"tag": 1})
    return sorted(t["tag"] for t in taggings)


def tag_counts(limit: int = 0) -> list[dict[str, Any]]:
    """Return every tag with the number of posts carrying it, most used first."""
    return queries.tag_counts(get_db().tag_totals, limit)


def posts_with_tag(tag: str) -> list[dict[str, Any]]:
    """Return the posts carrying a tag, most popular first."""
    return queries.posts_with_tag(get_db().posts, tag)


# --- users -------------------------------------------------------------------------------


def create_user(username: str, password_hash: str) -> bool:
    """Store a new user, marked for publishing; return False if the name is taken."""
    user = {"_id": username, "password_hash": password_hash, "topics": []}
    try:
        get_db().users.insert_one({**user, "version": first_version(), "outbox_pending": True})
    except DuplicateKeyError:
        return False
    nudge()
    return True


def get_user(username: str) -> dict[str, Any] | None:
    """Return a user's record (with the password hash: never send it out), or None."""
    return get_db().users.find_one({"_id": username})


def set_topics(username: str, topics: list[str]) -> None:
    """Store a user's preferred topics, marked for publishing."""
    get_db().users.update_one({"_id": username}, changed({"topics": topics}))
    nudge()


def get_topics(username: str | None) -> list[str]:
    """Return a user's preferred topics (none for a visitor)."""
    if username is None:
        return []
    user = get_db().users.find_one({"_id": username}, {"topics": 1})
    return list(user["topics"]) if user else []


# --- ingest jobs -------------------------------------------------------------------------


def create_job(description: str) -> str:
    """Record a new ingest job as running and return its id."""
    return job_records.create_job(get_db().jobs, description)


def finish_job(job_id: str, stored: Upserted, rejected: int, error: str | None = None) -> None:
    """Record how a job ended."""
    job_records.finish_job(get_db().jobs, job_id, stored, rejected, error)


def get_job(job_id: str) -> dict[str, Any] | None:
    """Return a job's public state, or None."""
    job = get_db().jobs.find_one({"_id": job_id})
    return job_records.public_job(job) if job else None
