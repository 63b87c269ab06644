"""MongoDB queries over post data, written once for every stage's store.

Each function takes the collection it reads, so a stage decides which database owns it:
the monolith's one database, the REST API's, or a service's own. Ranking itself is the
domain's (workshop.domain); these functions only fetch what ranking needs, in the shapes
workshop/documents.py gives the stored posts.
"""

from collections.abc import Iterable
from typing import Any

import pymongo
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from workshop.db import Collection
from workshop.documents import (
    BY_POSTS,
    BY_SCORE,
    DUPLICATE_KEY,
    RANK_ORDER,
    SHOWN,
    Upserted,
    Written,
    public_post,
    stored_post,
    tag_counts_pipeline,
    with_rank,
)
from workshop.domain import recommend as recommender
from workshop.domain import search as searching
from workshop.domain.tags import count_tags


def create_post_indexes(posts: Collection) -> None:
    """Index what search and tag pages read: each term's posts best first (terms is
    multikey: a post is under each of its terms), and the posts carrying a tag."""
    posts.create_index([("terms", pymongo.ASCENDING), *BY_SCORE])
    posts.create_index("tags.tag")


def create_ranking_indexes(posts: Collection) -> None:
    """Index what recommendations read: the rank order, and the topics a user prefers
    (with tags.tag, from create_post_indexes: a post's tags can meet them too)."""
    posts.create_index(RANK_ORDER)
    posts.create_index("topics")


def create_tagging_indexes(taggings: Collection, totals: Collection) -> None:
    """One tagging per (post, tag, user): tagging twice changes nothing. A tag's taggings
    (its total is counted from them), and the totals most used first."""
    taggings.create_index(
        [("post_id", 1), ("tag", 1), ("user", 1)], unique=True, name="one_tag_per_user"
    )
    taggings.create_index("user")
    taggings.create_index("tag")
    totals.create_index(BY_POSTS)


def upsert_each(collection: Collection, writes: list[UpdateOne], retry: bool = True) -> Written:
    """Run keyed upserts in one round trip and return what the database says they did.

    An update that leaves a document as it was counts as matched, not modified. Two imports
    may insert the same new post at once: the slower upsert fails on the duplicate key, and
    runs again as an update of the document the faster one inserted.
    """
    if not writes:
        return Written([], 0, 0)
    try:
        result = collection.bulk_write(writes, ordered=False)
    except BulkWriteError as error:
        details, errors = error.details, error.details["writeErrors"]
        if not retry or any(e["code"] != DUPLICATE_KEY for e in errors):
            raise
        again = upsert_each(collection, [writes[e["index"]] for e in errors], retry=False)
        return Written(
            [u["_id"] for u in details["upserted"]] + again.inserted,
            details["nMatched"] + again.matched,
            details["nModified"] + again.modified,
        )
    return Written(list(result.upserted_ids.values()), result.matched_count, result.modified_count)


def upsert_posts(posts: Collection, new_posts: Iterable[dict[str, Any]]) -> Upserted:
    """Store posts keyed by reddit id; their tags stay as users left them. Say what changed.

    A post stored with the same content is matched but not modified, so importing the same
    file again writes nothing, and reports every post unchanged.
    """
    documents = {post["id"]: with_rank(stored_post(post)) for post in new_posts}
    written = upsert_each(
        posts,
        [
            UpdateOne(
                {"_id": post_id},
                {
                    "$set": {k: v for k, v in document.items() if k not in ("_id", "tags")},
                    "$setOnInsert": {"tags": document.get("tags", [])},
                },
                upsert=True,
            )
            for post_id, document in documents.items()
        ],
    )
    return Upserted(
        new=len(written.inserted),
        updated=written.modified,
        unchanged=written.matched - written.modified,
    )


def get_post(posts: Collection, post_id: str) -> dict[str, Any] | None:
    """Return one post, or None."""
    document = posts.find_one({"_id": post_id}, SHOWN)
    # A service's copy may know a post's tags before its text arrives: not a post yet.
    return public_post(document) if document and "title" in document else None


def posts_by_ids(posts: Collection, ids: list[str]) -> list[dict[str, Any]]:
    """Return full posts for ids, in the order of the ids."""
    documents = posts.find({"_id": {"$in": ids}}, SHOWN).to_list()
    found = {d["_id"]: d for d in documents}
    return [public_post(found[i]) for i in ids if i in found]


def search(
    posts: Collection, terms: list[str], page: int, per_page: int
) -> tuple[int, list[dict[str, Any]]]:
    """Return (total, one page of posts) matching any of the terms, best first.

    The total is counted from the terms index. The page is read from each term's posts
    best first, no further than it takes (the domain says when it knows): enough for a
    page of a one-term search; more when few posts have every term.
    """
    if not terms:
        return 0, []
    total = posts.count_documents({"terms": {"$in": terms}})
    wanted = page * per_page
    length = wanted
    while (ids := searching.best_ids([_term_walk(posts, t, length) for t in terms],
                                     wanted, length)) is None:  # fmt: skip
        length *= 4
    return total, posts_by_ids(posts, ids[searching.page_slice(page, per_page)])


def _term_walk(posts: Collection, term: str, length: int) -> list[dict[str, Any]]:
    """Return the first `length` posts with a term, best first (its part of the index)."""
    found = posts.find({"terms": term}, {"score": 1}).sort(BY_SCORE).limit(length).to_list()
    return [{"id": document["_id"], "score": document["score"]} for document in found]


def recommendations(posts: Collection, topics: list[str], limit: int) -> list[dict[str, Any]]:
    """Return recommended posts, best first: those meeting the preferred topics first.

    Two reads in rank order, each stopping after `limit` posts (the rank index): the best
    posts meeting the topics, and the best of all; the domain merges them.
    """

    def best(search: dict[str, Any]) -> list[dict[str, Any]]:
        return posts.find(search, SHOWN).sort(RANK_ORDER).limit(limit).to_list()

    eligible = recommender.eligible()
    preferred = best({**eligible, **recommender.meeting(topics)}) if topics else []
    chosen = recommender.preferred_first(preferred, best(eligible), limit, key=_key)
    return [public_post(document) for document in chosen]


def _key(document: dict[str, Any]) -> Any:
    return document["_id"]


def posts_with_tag(posts: Collection, tag: str) -> list[dict[str, Any]]:
    """Return the posts carrying a tag, most popular first, ties by id."""
    documents = posts.find({"tags.tag": tag, "title": {"$exists": True}}, SHOWN).sort(
        [("score", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]
    )
    return [public_post(d) for d in documents.to_list()]


def tags_of_post(taggings: Collection, post_id: str) -> list[dict[str, Any]]:
    """Count a post's tags from its taggings."""
    found = taggings.find({"post_id": post_id}, {"tag": 1}).to_list()
    return count_tags(t["tag"] for t in found)


def store_tag_total(taggings: Collection, totals: Collection, tag: str) -> None:
    """Store how many posts carry a tag, recounting until a second count agrees with the
    first: two writers may recount in either order, and the last write is a checked one."""
    count = len(taggings.distinct("post_id", {"tag": tag}))
    for _ in range(5):
        if count:
            totals.update_one({"_id": tag}, {"$set": {"posts": count}}, upsert=True)
        else:
            totals.delete_one({"_id": tag})
        again = len(taggings.distinct("post_id", {"tag": tag}))
        if again == count:
            return
        count = again


def tag_counts(totals: Collection, limit: int = 0) -> list[dict[str, Any]]:
    """Return every tag with the number of posts carrying it, most used first, ties by tag."""
    found = totals.find({}).sort(BY_POSTS).limit(limit).to_list()
    return [{"tag": total["_id"], "count": total["posts"]} for total in found]


def count_tags_once(taggings: Collection, totals: Collection) -> None:
    """Count every tag's posts from the taggings when a store has taggings but no totals
    (a store written before they were kept); nothing when they agree already."""
    if totals.count_documents({}) or not taggings.count_documents({}):
        return
    counted = taggings.aggregate(tag_counts_pipeline())
    for row in counted.to_list():
        totals.update_one({"_id": row["_id"]}, {"$set": {"posts": row["count"]}}, upsert=True)


# Stages 01-03 only: 04 keeps a post's tags its own way (tag).


def store_tag_counts(posts: Collection, taggings: Collection, post_id: str) -> None:
    """Store a post's tag counts, recounting until a second count agrees with the first.

    Two writers can recount in either order, so a slower one may store an older count;
    every writer checks after its own write, so the last write is always a checked one.
    """
    tags = tags_of_post(taggings, post_id)
    for _ in range(5):
        posts.update_one({"_id": post_id}, {"$set": {"tags": tags}})
        again = tags_of_post(taggings, post_id)
        if again == tags:
            return
        tags = again
