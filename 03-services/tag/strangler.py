"""What tag takes from the monolith while the strangler fig runs (stage 03 only,
`workshop up 03-services --strangler`, docs/strangler-fig.md): until the tag verb moves
here, the monolith owns the taggings, and tag keeps them as the monolith publishes them.
"""

from chassis.service import Database
from workshop import queries
from workshop.platform.messages import TAGGINGS_CHANGED, Message


def on_taggings_changed(database: Database, message: Message) -> None:
    """In a migration, before the tag verb moves here: hold a post's taggings and counts as
    the monolith published them, at its version, so our own changes number on from it."""
    post_id, taggers = message.key, message.payload["taggings"]
    known = database.counts.find_one({"_id": post_id}, {"version": 1})
    if known and known.get("version", 0) >= message.version:
        return  # as new or newer already: a duplicate, or out of order
    before = {t["tag"] for t in database.taggings.find({"post_id": post_id}, {"tag": 1})}
    database.taggings.delete_many({"post_id": post_id})
    taggings = [{"post_id": post_id, "tag": tag, "user": user}
                for tag, users in taggers.items() for user in users]  # fmt: skip
    if taggings:
        database.taggings.insert_many(taggings)
    counts = {tag: len(users) for tag, users in taggers.items()}
    database.counts.update_one({"_id": post_id},
                               {"$set": {"counts": counts, "version": message.version}},
                               upsert=True)  # fmt: skip
    for tag in before | set(counts):
        queries.store_tag_total(database.taggings, database.tag_totals, tag)


FOLLOWS = {TAGGINGS_CHANGED: on_taggings_changed}
