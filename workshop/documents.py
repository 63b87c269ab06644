"""What the stores hold, with no round trip to them: the stored shapes of posts, the orders
the indexes keep, and what a batch of writes did.

Every stage's queries share these: workshop/queries.py (PyMongo's blocking API, stages
01-03) and stage 04's chassis/queries.py (its async API) differ only in their round trips.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pymongo

from workshop.domain import posts as post_model
from workshop.domain import recommend as recommender

DUPLICATE_KEY = 11000
# Recommendations are read best first: by the rank stored with each post, ties by id. The
# index in this order lets a read of the top k stop after k posts.
RANK_ORDER = [("rank", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]
# Search reads each term's posts best first: by score, ties by id (search's rule).
BY_SCORE = [("score", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]
# What a post page, a search page and a recommendation show: not the search terms.
SHOWN = {"terms": 0}
# The tag list: each tag's number of posts, kept as taggings change and read most used
# first from an index (grouping every tagging for each page grew with the taggings).
BY_POSTS = [("posts", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]


def public_post(document: dict[str, Any]) -> dict[str, Any]:
    """Return the public Post of a stored document (keyed by _id, with internal fields)."""
    # A service's copy of a post nobody tagged yet has no tags field: none is [].
    return post_model.public({"tags": [], **document, "id": document["_id"]})


def stored_post(post: dict[str, Any]) -> dict[str, Any]:
    """Return the stored form of a Post: keyed by id, with its search terms."""
    fields = {k: v for k, v in post.items() if k != "id"}
    return {"_id": post["id"], **fields, "terms": post_model.search_terms(post)}


def with_rank(
    document: dict[str, Any], formula: recommender.Formula = recommender.popularity
) -> dict[str, Any]:
    """Return a stored post with its rank by a recommender's formula (kept with the post,
    so recommendations read the best posts from an index instead of ranking them all)."""
    return {**document, "rank": formula(document)}


@dataclass(frozen=True)
class Upserted:
    """What storing posts did to each: inserted it, changed it, or found it already so."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        """Return how many posts were stored, changed or not."""
        return self.new + self.updated + self.unchanged


def counted(stored: Iterable[dict[str, Any]], batch: str) -> Upserted:
    """Say what a batch did to the posts it wrote, from the marks it left on them: stored
    them first (new), changed them (updated), or found them as they were (unchanged). The
    marks stay, so a batch written twice (a retried task) is counted the same both times."""
    new = updated = unchanged = 0
    for document in stored:
        if document.get("stored_by") == batch:
            new += 1
        elif document.get("changed_by") == batch:
            updated += 1
        else:
            unchanged += 1
    return Upserted(new=new, updated=updated, unchanged=unchanged)


@dataclass(frozen=True)
class Written:
    """What keyed upserts did: the keys they inserted, the documents matched and modified."""

    inserted: list[Any]
    matched: int
    modified: int


def tag_counts_pipeline(limit: int = 0) -> list[dict[str, Any]]:
    """Return the aggregation that counts the posts carrying each tag from every tagging,
    most used first (once, to fill the kept totals)."""
    pipeline: list[dict[str, Any]] = [
        {"$group": {"_id": {"tag": "$tag", "post": "$post_id"}}},
        {"$group": {"_id": "$_id.tag", "count": {"$sum": 1}}},
        {"$sort": {"count": -1, "_id": 1}},
    ]
    if limit:
        pipeline.append({"$limit": limit})
    return pipeline
