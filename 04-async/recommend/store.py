"""The recommend service's data: its own copy of posts (with tags) and of preferences."""

from typing import Any

from chassis import queries
from chassis.messaging.inbox import apply_versioned
from chassis.service import AsyncDatabase, get_db
from workshop.documents import stored_post
from workshop.domain.recommend import Formula, popularity
from workshop.platform.messages import Message


async def setup(database: AsyncDatabase) -> None:
    """Index what ranking queries."""
    await queries.create_post_indexes(database.posts)
    await queries.create_ranking_indexes(database.posts)


async def recommendations(user: str | None, limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Return (posts, the topics used): the user's topics first, if we know of any."""
    preferences = await get_db().preferences.find_one({"_id": user}) if user else None
    topics = preferences["topics"] if preferences else []
    return await queries.recommendations(get_db().posts, topics, limit), topics


async def on_post_upserted(
    database: AsyncDatabase, message: Message, formula: Formula = popularity
) -> None:
    """Keep the post's latest state, with its rank by this version's formula (kept with the
    post and indexed: recommendations read the best posts in rank order)."""
    document = stored_post({"id": message.key, **message.payload})
    fields = {k: v for k, v in document.items() if k not in ("_id", "tags", "terms")}
    fields["rank"] = formula(fields)
    await apply_versioned(database.posts, message.key, message.version, fields, "post_version")


async def on_tags_changed(database: AsyncDatabase, message: Message) -> None:
    """Keep the post's latest tags (they can match a user's topics)."""
    tags = message.payload["tags"]
    await apply_versioned(database.posts, message.key, message.version, {"tags": tags}, "tags_version")


async def on_preferences_updated(database: AsyncDatabase, message: Message) -> None:
    """Keep each user's latest topics: personal answers need no call to users."""
    topics = message.payload["topics"]
    await apply_versioned(
        database.preferences, message.key, message.version, {"topics": topics}, "version"
    )
