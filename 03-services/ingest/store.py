"""The ingest service's data: the master copy of every post, and the ingest jobs."""

import uuid
from collections.abc import Iterable
from typing import Any

from pymongo import UpdateOne

from chassis.messaging.outbox import Source, changed, created, nudge
from chassis.service import Database, get_db
from workshop import config, ingestion, job_records, queries
from workshop.documents import Upserted, counted
from workshop.domain.posts import POST_FIELDS
from workshop.platform.messages import POST_UPSERTED, first_version, post_upserted

# What a post.upserted message carries: the post as it is, minus what others own (tags).
_POST_FIELDS = [f for f in POST_FIELDS if f not in ("id", "tags")]


def setup(database: Database) -> None:
    """Load the sample on embedded defaults, so the stage starts with data to serve."""
    seed = config.env("WORKSHOP_SEED_SAMPLE", "1") == "1"
    if seed and database.posts.count_documents({}) == 0:
        upsert_posts(ingestion.sample().posts, database)


def upsert_posts(
    posts: Iterable[dict[str, Any]], database: Database | None = None, batch: str | None = None
) -> Upserted:
    """Store posts keyed by reddit id; each new or changed one is marked for publishing.
    Say what storing them did, counted from what the store holds (exact, `batch` done twice).

    A post already stored as it is stays unmarked: the others have it, nothing is re-sent.
    Each post this batch stores or changes keeps its name (`batch`, else a new one), so a
    batch stored again (a retried task) still counts as new the posts it stored first.
    """
    collection = (database if database is not None else get_db()).posts
    batch = batch or uuid.uuid4().hex
    documents = {p["id"]: {f: p[f] for f in _POST_FIELDS} for p in posts}
    first = first_version()  # a new post's version (counted from the clock)
    writes = [
        UpdateOne({"_id": post_id}, created({**fields, "stored_by": batch}, first), upsert=True)
        for post_id, fields in documents.items()
    ]
    inserted = queries.upsert_each(collection, writes).inserted
    new = set(inserted)  # once: a set made per post made a big import quadratic
    known = [post_id for post_id in documents if post_id not in new]
    # Only a post one of whose fields differs matches, so only it is changed and marked.
    updates = [
        UpdateOne(
            {"_id": post_id, "$or": [{k: {"$ne": v}} for k, v in documents[post_id].items()]},
            changed({**documents[post_id], "changed_by": batch}),
        )
        for post_id in known
    ]
    queries.upsert_each(collection, updates)
    nudge()
    stored = collection.find({"_id": {"$in": list(documents)}}, {"stored_by": 1, "changed_by": 1})
    return counted(stored.to_list(), batch)


def outbox(database: Database) -> list[Source]:
    """What this service publishes: each post's current state when it changes."""
    return [Source(database.posts, POST_UPSERTED, post_upserted)]


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
