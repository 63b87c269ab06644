"""MongoDB queries over post data, written once for every stage's store.

Each function takes the collection it reads, so a stage decides which database owns it:
the monolith's one database, the REST API's, or a service's own. Ranking itself is the
domain's (workshop.domain); these functions only fetch what ranking needs.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pymongo
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from workshop.domain import posts as post_model
from workshop.domain import recommend as recommender
from workshop.domain import search as searching
from workshop.domain.tags import count_tags

DUPLICATE_KEY = 11000
# Recommendations are read best first: by the rank stored with each post, ties by id. The
# index in this order lets a read of the top k stop after k posts.
RANK_ORDER = [("rank", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]
# Search reads each term's posts best first: by score, ties by id (search's rule).
BY_SCORE = [("score", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]
# What a post page, a search page and a recommendation show: not the search terms.
SHOWN = {"terms": 0}


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


# The tag list: each tag's number of posts, kept as taggings change and read most used
# first from an index (grouping every tagging for each page grew with the taggings).
BY_POSTS = [("posts", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]


def create_tagging_indexes(taggings: Collection, totals: Collection) -> None:
    """One tagging per (post, tag, user): tagging twice changes nothing. A tag's taggings
    (its total is counted from them), and the totals most used first."""
    taggings.create_index(
        [("post_id", 1), ("tag", 1), ("user", 1)], unique=True, name="one_tag_per_user"
    )
    taggings.create_index("user")
    taggings.create_index("tag")
    totals.create_index(BY_POSTS)


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
    found = {d["_id"]: d for d in posts.find({"_id": {"$in": ids}}, SHOWN)}
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
    found = posts.find({"terms": term}, {"score": 1}).sort(BY_SCORE).limit(length)
    return [{"id": document["_id"], "score": document["score"]} for document in found]


def recommendations(posts: Collection, topics: list[str], limit: int) -> list[dict[str, Any]]:
    """Return recommended posts, best first: those meeting the preferred topics first.

    Two reads in rank order, each stopping after `limit` posts (the rank index): the best
    posts meeting the topics, and the best of all; the domain merges them.
    """

    def best(search: dict[str, Any]) -> list[dict[str, Any]]:
        return list(posts.find(search, SHOWN).sort(RANK_ORDER).limit(limit))

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
    return [public_post(d) for d in documents]


def tags_of_post(taggings: Collection, post_id: str) -> list[dict[str, Any]]:
    """Count a post's tags from its taggings."""
    return count_tags(t["tag"] for t in taggings.find({"post_id": post_id}, {"tag": 1}))


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
    found = totals.find({}).sort(BY_POSTS).limit(limit)
    return [{"tag": total["_id"], "count": total["posts"]} for total in found]


def count_tags_once(taggings: Collection, totals: Collection) -> None:
    """Count every tag's posts from the taggings when a store has taggings but no totals
    (a store written before they were kept); nothing when they agree already."""
    if totals.count_documents({}) or not taggings.count_documents({}):
        return
    for row in taggings.aggregate(tag_counts_pipeline()):
        totals.update_one({"_id": row["_id"]}, {"$set": {"posts": row["count"]}}, upsert=True)


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


# What a job counts: posts stored (new + updated + unchanged), and rows rejected.
JOB_COUNTS = ("ingested", "new", "updated", "unchanged", "rejected")


def create_job(jobs: Collection, description: str) -> str:
    """Record a new ingest job as running and return its id."""
    job_id = uuid.uuid4().hex
    jobs.insert_one(
        {"_id": job_id, "state": "running", **dict.fromkeys(JOB_COUNTS, 0),
         "source": description, "created_at": datetime.now(UTC)}
    )  # fmt: skip
    return job_id


def finish_job(
    jobs: Collection, job_id: str, stored: Upserted, rejected: int, error: str | None = None
) -> None:
    """Record how a job ended: done, or failed with a reason."""
    fields: dict[str, Any] = {
        "ingested": stored.total, "new": stored.new, "updated": stored.updated,
        "unchanged": stored.unchanged, "rejected": rejected,
    }  # fmt: skip
    fields.update(state="failed" if error else "done", finished_at=datetime.now(UTC))
    if error:
        fields["error"] = error
    jobs.update_one({"_id": job_id}, {"$set": fields})


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """Return a job's public state: its id, state, source, counts and error (if it failed)."""
    answer = {"id": job["_id"], "state": job["state"], "source": job["source"]}
    # A job recorded before a count existed has none of it: 0.
    answer.update({count: job.get(count, 0) for count in JOB_COUNTS})
    if job.get("error"):
        answer["error"] = job["error"]
    return answer
