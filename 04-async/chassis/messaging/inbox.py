"""Applying messages idempotently: a duplicate or an older version changes nothing.

A message's id is (type, key, version), so "drop a message already seen" and "apply only
a newer version" are one check: the stored version of that part of the entity.
"""

from typing import Any

from pymongo.errors import DuplicateKeyError

from workshop.db import AsyncCollection


async def apply_versioned(
    collection: AsyncCollection, key: str, version: int, fields: dict[str, Any], version_field: str
) -> bool:
    """Set fields on the entity if `version` is newer than its stored one; tell if applied.

    Different messages about one entity (a post's text, its tags) keep separate version
    fields, so each arrives in its own order.
    """
    newer = {"$or": [{version_field: {"$lt": version}}, {version_field: {"$exists": False}}]}
    try:
        result = await collection.update_one(
            {"_id": key, **newer}, {"$set": {**fields, version_field: version}}, upsert=True
        )
    except DuplicateKeyError:
        return False  # the entity exists with this version or a newer one
    return result.modified_count > 0 or result.upserted_id is not None
