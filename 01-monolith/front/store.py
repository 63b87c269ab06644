"""All of the monolith's data access: the only module that touches MongoDB.

One database holds everything (posts, taggings, users, jobs): simple, and exactly the
coupling the next stages take apart. The post queries themselves are shared with later
stages (workshop.queries); what is the monolith's own is that they all meet here.
"""

from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app, g
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from workshop import db as databases
from workshop import job_records, queries
from workshop.documents import Upserted


def get_db() -> Database:
    """Return the app's database, opened once per request."""
    if "db" not in g:
        g.db = databases.database(current_app.config["DATABASE_NAME"])
    return g.db


def init_app(app: Flask) -> None:
    """Create the indexes every query below relies on."""
    with app.app_context():
        queries.create_post_indexes(get_db().posts)
        queries.create_ranking_indexes(get_db().posts)
        queries.create_tagging_indexes(get_db().taggings, get_db().tag_totals)
        queries.count_tags_once(get_db().taggings, get_db().tag_totals)


# --- posts -------------------------------------------------------------------------------


def upsert_posts(posts: Iterable[dict[str, Any]]) -> Upserted:
    """Store posts keyed by reddit id; tags stay as users left them. Say what changed."""
    return queries.upsert_posts(get_db().posts, posts)


def count_posts() -> int:
    """Return how many posts are stored."""
    return get_db().posts.count_documents({})


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
    """Store a new user; return False if the name is taken."""
    try:
        get_db().users.insert_one({"_id": username, "password_hash": password_hash, "topics": []})
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
    return job_records.create_job(get_db().jobs, description)


def finish_job(job_id: str, stored: Upserted, rejected: int, error: str | None = None) -> None:
    """Record how a job ended."""
    job_records.finish_job(get_db().jobs, job_id, stored, rejected, error)


def get_job(job_id: str) -> dict[str, Any] | None:
    """Return a job's public state, or None."""
    job = get_db().jobs.find_one({"_id": job_id})
    return job_records.public_job(job) if job else None
