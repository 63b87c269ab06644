"""The generated sample dataset: deterministic, valid, and varied enough to search."""

import gzip
import hashlib
import json
import re
from collections import Counter

import pytest

from workshop.data.importers import parse_mongoexport
from workshop.data.sample import sample_posts, write_sample
from workshop.domain.posts import normalise, search_terms
from workshop.domain.topics import TOPICS


@pytest.fixture(scope="module")
def posts() -> list[dict]:
    return sample_posts()


@pytest.fixture(scope="module")
def normalised(posts: list[dict]) -> list[dict]:
    return [normalise(post) for post in posts]


def test_same_seed_gives_the_same_posts(posts: list[dict]) -> None:
    assert sample_posts() == posts


def test_output_is_pinned_across_python_versions(posts: list[dict]) -> None:
    # The dataset is part of the workshop: slides and exercises quote its posts. If this
    # fails after a deliberate change to the generator, update the digest.
    digest = hashlib.sha256(json.dumps(posts, sort_keys=True).encode()).hexdigest()
    assert digest == "78fd6428c4711992fd9a64f6a9e83e6d51daaebe3b679fe5bb107007e3df8bb1"


def test_another_seed_gives_other_posts(posts: list[dict]) -> None:
    assert sample_posts(50, seed=7) != posts[:50]


def test_count_is_honoured() -> None:
    assert len(sample_posts()) == 3000
    assert len(sample_posts(25)) == 25
    assert sample_posts(0) == []


def test_ids_are_unique_lowercase_base36_with_matching_fullnames(posts: list[dict]) -> None:
    ids = [post["id"] for post in posts]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-z]+", post_id) for post_id in ids)
    assert all(post["name"] == "t3_" + post["id"] for post in posts)


def test_records_have_the_reddit_post_shape(posts: list[dict]) -> None:
    for post in posts:
        assert post["permalink"].startswith(f"/r/{post['subreddit']}/comments/{post['id']}/")
        assert post["permalink"].endswith("/")
        assert isinstance(post["created_utc"], float)
        assert 1325376000 <= post["created_utc"] < 1420070400  # 2012 to 2014
        assert post["score"] == post["ups"] - post["downs"]
        if post["is_self"]:
            assert post["domain"] == "self." + post["subreddit"]
            assert post["selftext"]
        else:
            assert post["url"].startswith(("http://", "https://"))
            assert post["domain"] in post["url"]
            assert post["selftext"] == ""


def test_every_record_normalises(normalised: list[dict]) -> None:
    assert len(normalised) == 3000


def test_every_topic_has_at_least_fifty_posts(normalised: list[dict]) -> None:
    topics = Counter(topic for post in normalised for topic in post["topics"])
    assert {topic: topics[topic] for topic in TOPICS if topics[topic] < 50} == {}


@pytest.mark.parametrize(
    "term", ["asyncio", "django", "panda", "pypy", "flask", "numpy", "pytest", "docker"]
)
def test_featured_libraries_are_found_by_search(normalised: list[dict], term: str) -> None:
    matching = [post for post in normalised if term in search_terms(post)]
    assert len(matching) >= 20
    # Some mention it alone and some alongside other libraries, so relevance varies.
    assert len({len(post["topics"]) for post in matching}) >= 2


def test_a_two_term_query_ranks_posts_with_both_terms(normalised: list[dict]) -> None:
    both = [post for post in normalised if {"django", "pypy"} <= set(search_terms(post))]
    assert both


def test_scores_have_a_long_tail(posts: list[dict]) -> None:
    scores = sorted(post["score"] for post in posts)
    share_of_ten_or_more = sum(score >= 10 for score in scores) / len(scores)
    assert 0.25 <= share_of_ten_or_more <= 0.45
    assert scores[len(scores) // 2] < 10
    assert scores[-1] >= 1000


def test_subreddits_domains_and_post_kinds_are_mixed(posts: list[dict]) -> None:
    subreddits = Counter(post["subreddit"] for post in posts)
    for name in ("python", "learnpython", "django", "flask", "datascience", "programming"):
        assert subreddits[name] >= 100
    self_posts = sum(post["is_self"] for post in posts)
    assert 0.2 < self_posts / len(posts) < 0.8
    link_domains = {post["domain"] for post in posts if not post["is_self"]}
    assert len(link_domains) >= 10


def test_write_sample_round_trips_through_the_importer(tmp_path, normalised) -> None:
    path = tmp_path / "sample.ndjson"
    assert write_sample(path) == 3000
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3000
    first = json.loads(lines[0])
    assert re.fullmatch(r"[0-9a-f]{24}", first["_id"]["$oid"])
    assert first["edited"] in ("False", "True") or isinstance(first["edited"], float)
    assert isinstance(first["created_utc"], float)

    report = parse_mongoexport(path.read_bytes().splitlines())
    assert report.rejected == []
    assert report.posts == normalised


def test_write_sample_is_byte_identical_between_runs(tmp_path) -> None:
    first, second = tmp_path / "a.ndjson.gz", tmp_path / "b.ndjson.gz"
    assert write_sample(first, count=40) == 40
    write_sample(second, count=40)
    assert first.read_bytes() == second.read_bytes()
    assert len(gzip.decompress(first.read_bytes()).splitlines()) == 40
