"""The tag service's data: who tagged what, each post's counts, and which posts exist."""

from typing import Any

from pymongo.errors import DuplicateKeyError

from chassis.messaging.inbox import apply_versioned
from chassis.messaging.outbox import Source, changed_inc, nudge
from chassis.service import Database, get_db
from workshop import queries
from workshop.domain.tags import tag_list
from workshop.platform.messages import TAGS_CHANGED, Message, first_version


def setup(database: Database) -> None:
    """Index the taggings (one per post, tag and user) and the tags' totals."""
    queries.create_tagging_indexes(database.taggings, database.tag_totals)
    queries.count_tags_once(database.taggings, database.tag_totals)


def post_exists(post_id: str) -> bool:
    """Tell whether ingest has published this post (we keep our own list of ids)."""
    return get_db().posts.find_one({"_id": post_id}, {"_id": 1}) is not None


def add_tag(post_id: str, tag: str, user: str) -> None:
    """Record a user's tag; count it and mark the post's counts for publishing."""
    try:
        get_db().taggings.insert_one({"post_id": post_id, "tag": tag, "user": user})
    except DuplicateKeyError:
        return  # tagged already: nothing changes
    # A post's first count starts its versions from the clock (see first_version).
    get_db().counts.update_one(
        {"_id": post_id}, {"$setOnInsert": {"version": first_version()}}, upsert=True
    )
    # $inc is atomic, so two users tagging at once both count, in any order.
    get_db().counts.update_one({"_id": post_id}, changed_inc({f"counts.{tag}": 1}))
    queries.store_tag_total(get_db().taggings, get_db().tag_totals, tag)
    nudge()


def remove_tag(post_id: str, tag: str, user: str) -> None:
    """Withdraw a user's tag; count it down and mark the post's counts for publishing."""
    tagging = {"post_id": post_id, "tag": tag, "user": user}
    if get_db().taggings.delete_one(tagging).deleted_count:
        get_db().counts.update_one({"_id": post_id}, changed_inc({f"counts.{tag}": -1}))
        queries.store_tag_total(get_db().taggings, get_db().tag_totals, tag)
        nudge()


def user_tags(post_id: str, user: str) -> list[str]:
    """Return the tags a user gave a post."""
    taggings = get_db().taggings.find({"post_id": post_id, "user": user}, {"tag": 1})
    return sorted(t["tag"] for t in taggings.to_list())


def tag_counts(limit: int = 0) -> list[dict[str, Any]]:
    """Return every tag with the number of posts carrying it, most used first."""
    return queries.tag_counts(get_db().tag_totals, limit)


def outbox(database: Database) -> list[Source]:
    """What this service publishes: a post's tag counts, whenever they change."""
    return [Source(database.counts, TAGS_CHANGED, lambda d: {"tags": tag_list(d["counts"])})]


def on_post_upserted(database: Database, message: Message) -> None:
    """Remember that a post exists, so tags on unknown posts can be refused."""
    apply_versioned(database.posts, message.key, message.version, {}, "version")
