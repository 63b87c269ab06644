"""Search: the same ranking on every stage (relevance, then score, then id)."""

import json
import re
import uuid

import pytest

from tests.acceptance.stage import assert_error
from tests.acceptance.test_ingest import finished, new_record, searchable, start
from workshop.domain.posts import POST_FIELDS
from workshop.domain.text import document_terms, query_terms, stem


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
        # Digits only: Python's int() also reads these, the contract does not.
        {"q": "asyncio", "page": "1_000"},
        {"q": "asyncio", "page": "\uff12"},  # a full-width 2
        {"q": "asyncio", "page": " 2 "},
        {"q": "asyncio", "page": "+2"},
        {"q": "asyncio", "per_page": "1_0"},
        {"q[$ne]": "x"},
        {"q": "asyncio", "page[$gt]": "0"},
    ],
)
def test_bad_search_parameters_answer_400(client, params):
    assert_error(client.get("/api/search", params=params), 400)


MARKED = re.compile(r"<mark>([^<]*)</mark>")
NDJSON = {"Content-Type": "application/x-ndjson"}


def test_the_results_page_marks_why_each_post_matched(client):
    page = client.get("/search", params={"q": "testing"})
    assert page.status_code == 200
    marked = MARKED.findall(page.text)
    assert marked, "the matched words are marked"
    assert {stem(word.lower()) for word in marked} == {"test"}, "tests, Testing, tested..."
    assert page.text.count('class="snippet"') >= 1, "self posts show an excerpt of their text"


def test_a_result_with_markup_in_its_text_shows_it_as_text(client, importer):
    _, _, token = importer
    word = f"zq{uuid.uuid4().hex[:8]}"
    post_id, record = new_record(word)
    record["title"] = f'<script>alert("{word}")</script> {word}'
    record["selftext"] = f"<img src=x onerror=alert(1)> the {word} body"
    body = (json.dumps(record) + "\n").encode()
    job = finished(client, start(client, token, data=body, headers=NDJSON))
    assert job["state"] == "done", job
    searchable(client, word, post_id)
    page = client.get("/search", params={"q": word}).text
    assert "<script>alert" not in page and "<img src=x" not in page
    mark = f"<mark>{word}</mark>"
    assert f"&lt;script&gt;alert(&#34;{mark}&#34;)&lt;/script&gt; {mark}" in page
    assert f"&lt;img src=x onerror=alert(1)&gt; the {mark} body" in page
