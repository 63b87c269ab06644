"""The users service's data: users with their password hashes and preferred topics."""

from typing import Any

from pymongo.errors import DuplicateKeyError

from chassis.messaging.outbox import Source, changed, nudge
from chassis.service import AsyncDatabase, get_db
from workshop.platform.messages import PREFERENCES_UPDATED, first_version


async def create_user(username: str, password_hash: str) -> bool:
    """Store a new user; return False if the name is taken."""
    try:
        await get_db().users.insert_one(
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


async def get_user(username: str) -> dict[str, Any] | None:
    """Return a user's record (with the password hash: never send it out), or None."""
    return await get_db().users.find_one({"_id": username})


async def set_topics(username: str, topics: list[str]) -> None:
    """Store a user's topics, and mark the change for publishing (the outbox)."""
    await get_db().users.update_one({"_id": username}, changed({"topics": topics}))
    nudge()


async def get_topics(username: str | None) -> list[str]:
    """Return a user's preferred topics (none for a visitor)."""
    if username is None:
        return []
    user = await get_db().users.find_one({"_id": username}, {"topics": 1})
    return list(user["topics"]) if user else []


def outbox(database: AsyncDatabase) -> list[Source]:
    """What this service publishes: a user's preferences, whenever they change."""
    return [
        Source(database.users, PREFERENCES_UPDATED, lambda u: {"user": u["_id"], "topics": u["topics"]})
    ]
