"""Search: the same ranking on every stage (relevance, then score, then id)."""

import pytest

from tests.acceptance.stage import assert_error
from workshop.domain.posts import POST_FIELDS
from workshop.domain.text import document_terms, query_terms


def relevance(post, query):
    return len(set(query_terms(query)) & set(document_terms(post["title"], post["selftext"])))


@pytest.mark.parametrize(
    "query", ["asyncio", "django", "pandas", "pypy", "django pypy performance"]
)
def test_results_are_ranked_by_relevance_then_score_then_id(client, query):
    answer = client.get("/api/search", params={"q": query, "per_page": 100})
    assert answer.status_code == 200
    body = answer.json()
    assert body["query"] == query and body["page"] == 1 and body["per_page"] == 100
    items = body["items"]
    assert body["total"] >= 10, "the sample has plenty of posts on each of these"
    assert all(relevance(post, query) >= 1 for post in items)
    keys = [(-relevance(p, query), -p["score"], p["id"]) for p in items]
    assert keys == sorted(keys)


def test_a_multi_term_query_puts_posts_with_more_terms_first(client):
    items = client.get("/api/search", params={"q": "django pypy", "per_page": 100}).json()["items"]
    relevances = [relevance(p, "django pypy") for p in items]
    assert relevances[0] == 2, "some sample posts mention both"
    assert 1 in relevances


def test_search_is_case_insensitive_and_stems(client):
    lower = client.get("/api/search", params={"q": "testing"}).json()
    upper = client.get("/api/search", params={"q": "TESTS"}).json()
    assert lower["total"] == upper["total"] > 0
    assert [p["id"] for p in lower["items"]] == [p["id"] for p in upper["items"]]


def test_stop_words_alone_match_nothing(client):
    answer = client.get("/api/search", params={"q": "the and of"})
    assert answer.status_code == 200
    assert answer.json()["total"] == 0 and answer.json()["items"] == []


def test_pages_continue_each_other(client):
    whole = client.get("/api/search", params={"q": "python", "per_page": 30}).json()
    first = client.get("/api/search", params={"q": "python", "per_page": 10, "page": 1}).json()
    second = client.get("/api/search", params={"q": "python", "per_page": 10, "page": 2}).json()
    third = client.get("/api/search", params={"q": "python", "per_page": 10, "page": 3}).json()
    assert first["total"] == second["total"] == whole["total"]
    ids = [p["id"] for page in (first, second, third) for p in page["items"]]
    assert ids == [p["id"] for p in whole["items"]]
    assert len(set(ids)) == len(ids)


def test_a_page_past_the_end_is_empty(client):
    answer = client.get("/api/search", params={"q": "asyncio", "page": 100000})
    assert answer.status_code == 200
    assert answer.json()["items"] == [] and answer.json()["total"] > 0


def test_items_are_whole_posts(client):
    post = client.get("/api/search", params={"q": "flask"}).json()["items"][0]
    assert tuple(post) == POST_FIELDS


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "asyncio", "page": "0"},
        {"q": "asyncio", "page": "-1"},
        {"q": "asyncio", "page": "one"},
        {"q": "asyncio", "page": "1.5"},
        {"q": "asyncio", "per_page": "0"},
        {"q": "asyncio", "per_page": "101"},
        {"q": "asyncio", "per_page": "ten"},
        {"q[$ne]": "x"},
        {"q": "asyncio", "page[$gt]": "0"},
    ],
)
def test_bad_search_parameters_answer_400(client, params):
    assert_error(client.get("/api/search", params=params), 400)
