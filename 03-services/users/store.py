"""The users service's data: users with their password hashes and preferred topics."""

from typing import Any

from pymongo.errors import DuplicateKeyError

from chassis.messaging.outbox import Source, changed, nudge
from chassis.service import Database, get_db
from workshop.platform.messages import PREFERENCES_UPDATED, first_version


def create_user(username: str, password_hash: str) -> bool:
    """Store a new user; return False if the name is taken."""
    try:
        get_db().users.insert_one(
            {
                "_id": username,
                "password_hash": password_hash,
                "topics": [],
                "version": first_version(),
                # Its preferences (none yet) are published too: the owner's digest for
                # sync counts every user, and every copy knows every user.
                "outbox_pending": True,
            }
        )
    except DuplicateKeyError:
        return False
    nudge()
    return True


def get_user(username: str) -> dict[str, Any] | None:
    """Return a user's record (with the password hash: never send it out), or None."""
    return get_db().users.find_one({"_id": username})


def set_topics(username: str, topics: list[str]) -> None:
    """Store a user's topics, and mark the change for publishing (the outbox)."""
    get_db().users.update_one({"_id": username}, changed({"topics": topics}))
    nudge()


def get_topics(username: str | None) -> list[str]:
    """Return a user's preferred topics (none for a visitor)."""
    if username is None:
        return []
    user = get_db().users.find_one({"_id": username}, {"topics": 1})
    return list(user["topics"]) if user else []


def outbox(database: Database) -> list[Source]:
    """What this service publishes: a user's preferences, whenever they change."""
    return [
        Source(
            database.users, PREFERENCES_UPDATED, lambda u: {"user": u["_id"], "topics": u["topics"]}
        )
    ]
