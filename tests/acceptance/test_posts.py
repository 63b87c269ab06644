"""Single posts."""

import pytest

from tests.acceptance.stage import assert_error
from workshop.domain.posts import POST_FIELDS


def test_a_post_is_served_whole(client):
    first = client.get("/api/search", params={"q": "numpy"}).json()["items"][0]
    answer = client.get(f"/api/posts/{first['id']}")
    assert answer.status_code == 200
    post = answer.json()
    assert tuple(post) == POST_FIELDS
    assert post == first


@pytest.mark.parametrize("post_id", ["zzzzzzzzzzzz", "NOT-AN-ID", "%24ne", "a" * 40])
def test_an_unknown_post_answers_404(client, post_id):
    assert_error(client.get(f"/api/posts/{post_id}"), 404)


def test_the_post_page_renders(client):
    first = client.get("/api/search", params={"q": "numpy"}).json()["items"][0]
    page = client.get(f"/posts/{first['id']}")
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]


def test_an_unknown_post_page_answers_404(client):
    assert client.get("/posts/zzzzzzzzzzzz").status_code == 404
