import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from workshop import config, queries
from workshop import db as databases
from workshop.documents import BY_SCORE
from workshop.domain import posts as post_model
from workshop.domain.search import best_ids, page_slice, rank, relevance
from workshop.domain.text import query_terms


def post(post_id, score, terms):
    return {"id": post_id, "score": score, "terms": terms}


def test_relevance_counts_distinct_query_terms_present():
    assert relevance(["django", "pypy", "fast"], ["django", "pypy", "numpy"]) == 2
    assert relevance(["django"], ["django", "django"]) == 1
    assert relevance([], ["django"]) == 0


def test_rank_orders_by_relevance_then_score_then_id():
    candidates = [
        post("b", 10, ["django"]),
        post("a", 10, ["django"]),
        post("c", 99, ["django"]),
        post("d", 1, ["django", "pypy"]),
        post("e", 500, ["numpy"]),
    ]
    assert rank(candidates, ["django", "pypy"]) == ["d", "c", "a", "b"]


def test_rank_drops_posts_without_any_term():
    assert rank([post("a", 1, ["x"])], ["y"]) == []


def test_page_slice_is_one_based():
    items = list(range(45))
    assert items[page_slice(1, 20)] == list(range(20))
    assert items[page_slice(3, 20)] == list(range(40, 45))
    assert items[page_slice(4, 20)] == []


# --- reading each term's posts best first gives what ranking them all gives ----------------


def test_reading_the_terms_best_first_decides_the_page_as_ranking_every_post():
    rng = random.Random(5)
    vocabulary = ["a", "b", "c", "d"]
    posts = [
        post(f"p{n:03d}", rng.randint(0, 30), rng.sample(vocabulary, rng.randint(1, 3)))
        for n in range(300)
    ]
    for wanted in (["a"], ["a", "b"], ["a", "b", "c"], ["d", "x"], ["x"]):
        ranked = rank(posts, wanted)
        for count in (1, 5, 20, 60, 400):
            length, found = count, None
            while found is None:
                walks = [
                    sorted(
                        ({"id": p["id"], "score": p["score"]} for p in posts if t in p["terms"]),
                        key=lambda p: (-p["score"], p["id"]),
                    )[:length]
                    for t in wanted
                ]
                found = best_ids(walks, count, length)
                length *= 4
            assert found == ranked[:count], (wanted, count)


def test_a_one_term_page_needs_no_more_than_the_page():
    walk = [{"id": f"p{n}", "score": 100 - n} for n in range(20)]  # cut at 20: more may follow
    assert best_ids([walk], 20, 20) == [p["id"] for p in walk]
    assert best_ids([walk], 21, 20) is None  # the 21st is not read yet


# --- the stores answer a search from the terms index, as the rule ranks every post ----------


@pytest.fixture
def stored_posts() -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Posts with text, stored as every stage stores them (the embedded store, or a server)."""
    name = f"test_search_{uuid.uuid4().hex[:8]}"
    collection = databases.database(name).posts
    queries.create_post_indexes(collection)
    rng = random.Random(11)
    words = ["python", "flask", "django", "async", "testing", "docker", "numpy", "gil"]
    posts = []
    for n in range(600):
        ups = rng.randint(0, 80)
        posts.append({
            "id": f"q{n:04d}", "title": " ".join(rng.sample(words, rng.randint(1, 3))),
            "url": "https://example.com", "permalink": f"/r/python/comments/q{n}/",
            "author": "ann", "subreddit": "python", "created_utc": 1_400_000_000 + n,
            "score": ups - 5, "ups": ups, "downs": 5, "num_comments": 0, "is_self": True,
            "selftext": "", "domain": "self.python", "topics": [], "tags": [],
        })  # fmt: skip
    queries.upsert_posts(collection, posts)
    try:
        yield collection, posts
    finally:
        databases.client(config.mongo_url()).drop_database(name)


@pytest.mark.parametrize("query", ["python", "flask django", "gil numpy docker", "nothing"])
def test_a_stored_search_pages_as_the_rule_ranks(stored_posts, query):
    collection, posts = stored_posts
    wanted = query_terms(query)
    candidates = [{**p, "terms": post_model.search_terms(p)} for p in posts]
    ranked = rank(candidates, wanted)
    for page, per_page in ((1, 20), (2, 20), (3, 7), (50, 20)):
        total, found = queries.search(collection, wanted, page, per_page)
        assert total == len(ranked)
        assert [p["id"] for p in found] == ranked[page_slice(page, per_page)], (page, per_page)


def test_a_one_term_search_reads_its_page_from_the_index(stored_posts):
    collection, _ = stored_posts
    walk = collection.find({"terms": "python"}, {"score": 1}).sort(BY_SCORE).limit(20)
    statistics = walk.explain()["executionStats"]
    assert statistics["nReturned"] == 20 and statistics["totalDocsExamined"] <= 20, statistics
