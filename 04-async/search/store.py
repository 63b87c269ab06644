"""The search service's data: its own copy of every post, indexed by terms, with tags."""

from typing import Any

from chassis import queries
from chassis.messaging.inbox import apply_versioned
from chassis.service import AsyncDatabase, get_db
from workshop.documents import stored_post
from workshop.platform.messages import Message


async def setup(database: AsyncDatabase) -> None:
    """Index what search, post pages and tag pages query."""
    await queries.create_post_indexes(database.posts)


async def get_post(post_id: str) -> dict[str, Any] | None:
    """Return one post, or None."""
    return await queries.get_post(get_db().posts, post_id)


async def search(terms: list[str], page: int, per_page: int) -> tuple[int, list[dict[str, Any]]]:
    """Return (total, one page of posts) matching any of the terms, best first."""
    return await queries.search(get_db().posts, terms, page, per_page)


async def posts_with_tag(tag: str) -> list[dict[str, Any]]:
    """Return the posts carrying a tag, most popular first."""
    return await queries.posts_with_tag(get_db().posts, tag)


async def on_post_upserted(database: AsyncDatabase, message: Message) -> None:
    """Keep the post's latest text and votes (tags arrive separately)."""
    document = stored_post({"id": message.key, **message.payload})
    fields = {k: v for k, v in document.items() if k not in ("_id", "tags")}
    await apply_versioned(database.posts, message.key, message.version, fields, "post_version")


async def on_tags_changed(database: AsyncDatabase, message: Message) -> None:
    """Keep the post's latest tag counts."""
    tags = message.payload["tags"]
    await apply_versioned(database.posts, message.key, message.version, {"tags": tags}, "tags_version")
