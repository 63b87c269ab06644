"""Single posts."""

import html
import re
import uuid
from urllib.parse import urlsplit

import pytest

from tests.acceptance.stage import assert_error, eventually
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


@pytest.mark.parametrize(
    "permalink", ["@evil.example/x", ".evil.example/r/python/comments/x/", "//evil.example/x"]
)
def test_the_discussion_link_always_leads_to_reddit(client, importer, permalink):
    """A permalink that would move the link's host is not kept: the page links reddit."""
    _, _, token = importer
    post_id = uuid.uuid4().hex[:10]
    record = {"id": post_id, "title": f"Post {post_id}", "subreddit": "python",
              "created_utc": 1370000000, "permalink": permalink, "url": ""}  # fmt: skip
    listing = {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": record}]}}
    started = client.post("/api/ingest", token=token, json=listing)
    assert started.status_code == 202, started.text
    page = eventually(lambda: client.get(f"/posts/{post_id}"), lambda p: p.status_code == 200)
    assert page.status_code == 200, page.text[:300]
    links = dict(re.findall(r'<a href="([^"]*)">([^<]*)</a>', page.text))
    discussion = {text: href for href, text in links.items()}["View the discussion on reddit"]
    assert urlsplit(html.unescape(discussion)).hostname == "www.reddit.com"
    assert html.unescape(discussion) == f"https://www.reddit.com/r/python/comments/{post_id}/"
