"""The recommend service's data: its own copy of posts (with tags) and of preferences."""

from typing import Any

from chassis.messaging.inbox import apply_versioned
from chassis.service import Database, get_db
from workshop import queries
from workshop.documents import stored_post
from workshop.domain.recommend import Formula, popularity
from workshop.platform.messages import Message


def setup(database: Database) -> None:
    """Index what ranking queries."""
    queries.create_post_indexes(database.posts)
    queries.create_ranking_indexes(database.posts)


def recommendations(user: str | None, limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Return (posts, the topics used): the user's topics first, if we know of any."""
    preferences = get_db().preferences.find_one({"_id": user}) if user else None
    topics = preferences["topics"] if preferences else []
    return queries.recommendations(get_db().posts, topics, limit), topics


def on_post_upserted(database: Database, message: Message, formula: Formula = popularity) -> None:
    """Keep the post's latest state, with its rank by this version's formula (kept with the
    post and indexed: recommendations read the best posts in rank order)."""
    document = stored_post({"id": message.key, **message.payload})
    fields = {k: v for k, v in document.items() if k not in ("_id", "tags", "terms")}
    fields["rank"] = formula(fields)
    apply_versioned(database.posts, message.key, message.version, fields, "post_version")


def on_tags_changed(database: Database, message: Message) -> None:
    """Keep the post's latest tags (they can match a user's topics)."""
    tags = message.payload["tags"]
    apply_versioned(database.posts, message.key, message.version, {"tags": tags}, "tags_version")


def on_preferences_updated(database: Database, message: Message) -> None:
    """Keep each user's latest topics: personal answers need no call to users."""
    topics = message.payload["topics"]
    apply_versioned(
        database.preferences, message.key, message.version, {"topics": topics}, "version"
    )
