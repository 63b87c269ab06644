import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from workshop import config, queries
from workshop import db as databases
from workshop.documents import RANK_ORDER, SHOWN
from workshop.domain.recommend import (
    COMMENT_WEIGHT,
    SCORE_THRESHOLD,
    matches_preferences,
    popularity,
    recommend,
)
from workshop.domain.recommend import eligible as recommend_eligible


def post(post_id, ups, downs=0, comments=0, topics=(), tags=()):
    return {
        "id": post_id, "score": ups - downs, "ups": ups, "downs": downs, "num_comments": comments,
        "topics": list(topics), "tags": [{"tag": t, "count": 1} for t in tags],
    }  # fmt: skip


def test_popularity_is_net_votes_plus_weighted_comments():
    assert popularity(post("a", 50, 10, 5)) == 40 + COMMENT_WEIGHT * 5


def test_posts_under_the_threshold_are_not_recommended():
    low = post("low", SCORE_THRESHOLD - 1, comments=1000)
    assert recommend([low, post("ok", SCORE_THRESHOLD)]) == [post("ok", SCORE_THRESHOLD)]


def test_anonymous_order_is_popularity_then_id():
    posts = [post("b", 20), post("a", 20), post("c", 30)]
    assert [p["id"] for p in recommend(posts)] == ["c", "a", "b"]


def test_preferred_topics_or_tags_come_first():
    posts = [
        post("top", 900),
        post("web", 20, topics=["web"]),
        post("tagged", 15, tags=["data"]),
        post("other", 100, topics=["ml"]),
    ]
    ranked = [p["id"] for p in recommend(posts, topics=["web", "data"])]
    assert ranked == ["web", "tagged", "top", "other"]


def test_limit_caps_the_list():
    posts = [post(str(i), 20 + i) for i in range(30)]
    assert len(recommend(posts, limit=5)) == 5


def test_matches_preferences_needs_an_overlap():
    assert not matches_preferences(post("a", 20, topics=["web"]), [])
    assert not matches_preferences(post("a", 20, topics=["web"]), ["ml"])
    assert matches_preferences(post("a", 20, tags=["ml"]), ["ml"])


# --- the stores read the same recommendations from their rank index --------------------------


@pytest.fixture
def posts_collection() -> Iterator[Any]:
    """A post collection with the indexes every stage's store declares (a database of its own;
    the embedded store, or MONGO_URL's server)."""
    name = f"test_recommend_{uuid.uuid4().hex[:8]}"
    collection = databases.database(name).posts
    queries.create_post_indexes(collection)
    queries.create_ranking_indexes(collection)
    try:
        yield collection
    finally:
        databases.client(config.mongo_url()).drop_database(name)


def random_post(rng: random.Random, number: int) -> dict[str, Any]:
    ups, downs = rng.randint(0, 120), rng.randint(0, 30)
    return {
        "id": f"p{number:04d}", "title": f"post {number}", "url": "https://example.com",
        "permalink": f"/r/python/comments/p{number}/", "author": "ann", "subreddit": "python",
        "created_utc": 1_400_000_000 + number, "score": ups - downs, "ups": ups, "downs": downs,
        "num_comments": rng.randint(0, 40), "is_self": True, "selftext": "", "domain": "self",
        "topics": rng.sample(TOPICS, rng.randint(0, 2)),
        "tags": [{"tag": t, "count": 1} for t in rng.sample(TOPICS, rng.randint(0, 1))],
    }  # fmt: skip


TOPICS = ["web", "data", "async", "testing", "ml", "devops"]


@pytest.mark.parametrize("seed", range(4))
def test_the_store_reads_from_its_rank_index_what_the_rule_recommends(posts_collection, seed):
    rng = random.Random(seed)
    everything = [random_post(rng, n) for n in range(400)]
    queries.upsert_posts(posts_collection, everything)
    for post_tags in everything[:40]:  # tags set later, as users add them
        post_tags["tags"] = [{"tag": rng.choice(TOPICS), "count": 2}]
        posts_collection.update_one({"_id": post_tags["id"]}, {"$set": {"tags": post_tags["tags"]}})
    for topics in ([], ["web"], ["ml", "devops"], ["nothing-meets-this"], TOPICS):
        for limit in (1, 12, 50):
            found = queries.recommendations(posts_collection, topics, limit)
            assert [p["id"] for p in found] == [
                p["id"] for p in recommend(everything, topics, limit)
            ], (topics, limit)


def test_a_recommendation_reads_about_as_many_posts_as_it_returns(posts_collection):
    rng = random.Random(9)
    queries.upsert_posts(posts_collection, [random_post(rng, n) for n in range(2000)])
    explanation = (
        posts_collection.find(recommend_eligible(), SHOWN).sort(RANK_ORDER).limit(12).explain()
    )
    statistics = explanation["executionStats"]
    assert statistics["nReturned"] == 12
    assert statistics["totalDocsExamined"] <= 4 * 12, statistics  # not the 2,000
