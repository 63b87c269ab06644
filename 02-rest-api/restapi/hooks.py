"""Eve event hooks: the behaviour that goes with storing a document."""

from typing import Any

from flask import abort

from restapi import store
from workshop.domain import accounts


def hash_passwords(items: list[dict[str, Any]]) -> None:
    """Refuse weak passwords, then keep only a hash: the password itself is never stored."""
    for item in items:
        problem = accounts.password_problem(item["password"], item["username"])
        if problem:
            abort(422, description=problem)
        item["password_hash"] = accounts.hash_password(item.pop("password"))


def recount_after_insert(items: list[dict[str, Any]]) -> None:
    """Update the tag counts of the posts that were just tagged, and the tags' totals."""
    for post_id, tag in {(item["post_id"], item["tag"]) for item in items}:
        store.recount_tags(post_id, tag)


def recount_after_delete(item: dict[str, Any]) -> None:
    """Update the tag counts of a post that lost a tag, and the tag's total."""
    store.recount_tags(item["post_id"], item["tag"])


def register(app: Any) -> None:
    """Attach the hooks to Eve's events."""
    app.on_insert_users += hash_passwords
    app.on_inserted_taggings += recount_after_insert
    app.on_deleted_item_taggings += recount_after_delete
