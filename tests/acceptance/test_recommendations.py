"""Recommendations: popular posts for everyone, the user's topics first when logged in."""

import re

import pytest

from tests.acceptance.forms import log_in
from tests.acceptance.stage import assert_error, eventually
from workshop.domain.recommend import SCORE_THRESHOLD, popularity


def test_anonymous_recommendations_are_popular_posts_by_the_formula(client):
    body = client.get("/api/recommendations").json()
    assert body["user"] is None
    items = body["items"]
    assert len(items) == 12, "the default limit"
    assert all(post["score"] >= SCORE_THRESHOLD for post in items)
    keys = [(-popularity(p), p["id"]) for p in items]
    assert keys == sorted(keys)


def test_limit_is_honoured(client):
    assert len(client.get("/api/recommendations", params={"limit": 3}).json()["items"]) == 3
    top = client.get("/api/recommendations", params={"limit": 12}).json()["items"]
    assert client.get("/api/recommendations", params={"limit": 3}).json()["items"] == top[:3]


@pytest.mark.parametrize("limit", ["0", "51", "many", "-3", "1_0", "\uff13", " 3 "])
def test_bad_limits_answer_400(client, limit):
    assert_error(client.get("/api/recommendations", params={"limit": limit}), 400)


def test_preferred_topics_come_first_for_a_logged_in_user(client, user):
    username, _, token = user
    anonymous = client.get("/api/recommendations").json()["items"]
    answer = client.put("/api/me/preferences", token=token, json={"topics": ["testing"]})
    assert answer.status_code == 200

    def personal():
        return client.get("/api/recommendations", token=token).json()

    body = eventually(personal, lambda b: b["items"] and "testing" in b["items"][0]["topics"])
    assert body["user"] == username
    items = body["items"]
    assert all("testing" in post["topics"] for post in items), "the sample has many such posts"
    assert [p["id"] for p in items] != [p["id"] for p in anonymous]
    keys = [(-popularity(p), p["id"]) for p in items]
    assert keys == sorted(keys), "the same formula ranks within the preferred posts"


def test_an_invalid_token_is_refused_not_ignored(client):
    assert_error(client.get("/api/me/preferences", token="forged.token.value"), 401)


def recommended_ids(home_page: str) -> list[str]:
    section = re.search(r'<section id="recommendations".*?</section>', home_page, re.S)
    assert section, "the home page has its recommendations section"
    return re.findall(r'data-post-id="([^"]+)"', section.group())


def test_the_home_page_says_whose_topics_it_recommends_by(client, user):
    username, password, token = user
    anonymous = client.get("/").text
    assert "Popular posts" in anonymous and "Recommended for you" not in anonymous
    assert "Picked for your topics" not in anonymous
    answer = client.put("/api/me/preferences", token=token, json={"topics": ["testing", "web"]})
    assert answer.status_code == 200
    log_in(client, username, password)

    home = eventually(lambda: client.get("/").text, lambda page: "Recommended for you" in page)
    assert "Recommended for you" in home and "Popular posts" not in home
    assert "Picked for your topics: testing, web." in home
    assert len(recommended_ids(home)) == 12
    assert recommended_ids(home) != recommended_ids(anonymous)
