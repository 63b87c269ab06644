"""The ingest service's data: the master copy of every post (the worker's), and the jobs
(the web process's)."""

import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne

from chassis import queries
from chassis.messaging.outbox import Source, changed, created, nudge
from chassis.service import AsyncDatabase, get_db
from workshop import config, ingestion
from workshop.documents import JOB_COUNTS, Upserted, counted
from workshop.domain.posts import POST_FIELDS
from workshop.platform.messages import POST_UPSERTED, first_version, post_upserted

# What a post.upserted message carries: the post as it is, minus what others own (tags).
_POST_FIELDS = [f for f in POST_FIELDS if f not in ("id", "tags")]


async def setup(database: AsyncDatabase) -> None:
    """Load the sample on embedded defaults, so the stage starts with data to serve."""
    seed = config.env("WORKSHOP_SEED_SAMPLE", "1") == "1"
    if seed and await database.posts.count_documents({}) == 0:
        await upsert_posts(ingestion.sample().posts, database)


async def upsert_posts(
    posts: Iterable[dict[str, Any]], database: AsyncDatabase | None = None, batch: str | None = None
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
    inserted = (
        await queries.upsert_each(
            collection,
            [
                UpdateOne(
                    {"_id": post_id},
                    created({**fields, "stored_by": batch}, first),
                    upsert=True,
                )
                for post_id, fields in documents.items()
            ],
        )
    ).inserted
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
    await queries.upsert_each(collection, updates)
    nudge()
    stored = collection.find({"_id": {"$in": list(documents)}}, {"stored_by": 1, "changed_by": 1})
    return counted(await stored.to_list(), batch)


def outbox(database: AsyncDatabase) -> list[Source]:
    """What this service publishes: each post's current state when it changes."""
    return [Source(database.posts, POST_UPSERTED, post_upserted)]


async def create_job(
    job_id: str,
    description: str,
    tasks: dict[str, tuple[str, list[Any]]],
    rejected: int,
    error: str | None = None,
) -> None:
    """Record a job: the tasks doing its work (each task's id, name and arguments, kept
    until the job is over, so a task the broker lost can be sent again), and the rows its
    request already rejected."""
    await get_db().jobs.insert_one(
        {"_id": job_id, "source": description, "tasks": list(tasks), "rejected": rejected,
         "error": error, "created_at": datetime.now(UTC), "open": bool(tasks)}
    )  # fmt: skip
    if tasks:
        await get_db().job_tasks.insert_many(
            [{"_id": task_id, "job": job_id, "name": name, "args": args, "sent_at": time.time()}
             for task_id, (name, args) in tasks.items()]
        )  # fmt: skip


async def sent_tasks(database: AsyncDatabase, task_ids: list[str]) -> list[dict[str, Any]]:
    """Return the tasks sent with these ids: name, arguments and when they were last sent."""
    return await database.job_tasks.find({"_id": {"$in": task_ids}}).to_list()


async def sent_again(database: AsyncDatabase, task_id: str) -> None:
    """Note that a task was sent again now."""
    await database.job_tasks.update_one({"_id": task_id}, {"$set": {"sent_at": time.time()}})


def open_jobs(database: AsyncDatabase, within: timedelta) -> Any:
    """Return a cursor over the jobs created within `within` whose tasks may still run."""
    since = datetime.now(UTC) - within
    return database.jobs.find({"open": True, "created_at": {"$gte": since}})


async def close_job(database: AsyncDatabase, job_id: str) -> None:
    """Note that every task of a job has finished: it is no longer work in flight, and its
    tasks' arguments are no longer needed."""
    await database.jobs.update_one({"_id": job_id}, {"$set": {"open": False}})
    await database.job_tasks.delete_many({"job": job_id})


async def get_job(job_id: str) -> dict[str, Any] | None:
    """Return a job's record, or None."""
    return await get_db().jobs.find_one({"_id": job_id})


def public_job(job: dict[str, Any], tasks: list[tuple[str, Any]]) -> dict[str, Any]:
    """Return a job's public state from its record and its tasks' (state, result) pairs.

    Celery's states become the contract's: every task done is "done" (counts summed), a
    task failed is "failed" (with its reason), a task started or done is "running", none
    taken yet is "pending".
    """
    counts = dict.fromkeys(JOB_COUNTS, 0)
    counts["rejected"] = job["rejected"]
    for state, result in tasks:
        if state == "SUCCESS":
            for name in ("new", "updated", "unchanged", "rejected"):
                counts[name] += int(result.get(name, 0))
    counts["ingested"] = counts["new"] + counts["updated"] + counts["unchanged"]
    states = [state for state, _ in tasks]
    answer: dict[str, Any] = {"id": job["_id"], "source": job["source"], **counts}
    failures = [str(result) for state, result in tasks if state == "FAILURE"]
    if job.get("error") or failures:
        return {**answer, "state": "failed", "error": job.get("error") or failures[0]}
    if all(state == "SUCCESS" for state in states):
        return {**answer, "state": "done"}
    if any(state in ("STARTED", "RETRY", "SUCCESS") for state in states):
        return {**answer, "state": "running"}
    return {**answer, "state": "pending"}
