"""The search service's data: its own copy of every post, indexed by terms, with tags."""

from typing import Any

from chassis.messaging.inbox import apply_versioned
from chassis.service import Database, get_db
from workshop import queries
from workshop.documents import stored_post
from workshop.platform.messages import Message


def setup(database: Database) -> None:
    """Index what search, post pages and tag pages query."""
    queries.create_post_indexes(database.posts)


def get_post(post_id: str) -> dict[str, Any] | None:
    """Return one post, or None."""
    return queries.get_post(get_db().posts, post_id)


def search(terms: list[str], page: int, per_page: int) -> tuple[int, list[dict[str, Any]]]:
    """Return (total, one page of posts) matching any of the terms, best first."""
    return queries.search(get_db().posts, terms, page, per_page)


def posts_with_tag(tag: str) -> list[dict[str, Any]]:
    """Return the posts carrying a tag, most popular first."""
    return queries.posts_with_tag(get_db().posts, tag)


def on_post_upserted(database: Database, message: Message) -> None:
    """Keep the post's latest text and votes (tags arrive separately)."""
    document = stored_post({"id": message.key, **message.payload})
    fields = {k: v for k, v in document.items() if k not in ("_id", "tags")}
    apply_versioned(database.posts, message.key, message.version, fields, "post_version")


def on_tags_changed(database: Database, message: Message) -> None:
    """Keep the post's latest tag counts."""
    tags = message.payload["tags"]
    apply_versioned(database.posts, message.key, message.version, {"tags": tags}, "tags_version")
