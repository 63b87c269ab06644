"""The shared web helpers every front door uses."""

import asyncio

import pytest

from tooling.stages import get_stage
from workshop.web.policy import SNIPPET_WIDTH, highlight, local_path, snippet


@pytest.mark.parametrize("target", ["/", "/posts/abc", "/search?q=a//b", "/tags/web"])
def test_local_paths_are_kept(target):
    assert local_path(target) == target


@pytest.mark.parametrize(
    "target",
    [
        "",
        "https://evil.example/",
        "//evil.example",
        "/\t/evil.example/",
        "/\\evil",
        "/a\nb",
        "posts",
    ],
)
def test_anything_that_could_leave_the_site_is_dropped(target):
    assert local_path(target) == ""


def test_highlight_marks_matches_and_escapes_everything_else():
    title = '<script>alert("x")</script> Testing & <b>tests</b>'
    assert str(highlight(title, "test")) == (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; <mark>Testing</mark> &amp; "
        "&lt;b&gt;<mark>tests</mark>&lt;/b&gt;"
    )


def test_a_query_cannot_inject_markup_either():
    assert "<script>" not in str(highlight("a <script> tag", "<script>"))
    assert str(highlight("a script tag", "<script>")) == "a <mark>script</mark> tag"


def test_a_snippet_is_short_and_marked():
    text = "word " * 200 + "the tests <i>here</i> " + "word " * 200
    shown = str(snippet(text, "testing"))
    assert "<mark>tests</mark>" in shown and "&lt;i&gt;here&lt;/i&gt;" in shown
    assert len(shown) < SNIPPET_WIDTH + 60


# A post stored before permalinks were checked at import (or written to the database by
# hand) must not turn the page's "discussion" link into a link off reddit.
STORED_PERMALINKS = ["@evil.example/x", ".evil.example/r/x/", "//evil.example/x", "/r/x"]


def stored_post(permalink: str, url: str = "https://example.com/a") -> dict:
    return {
        "id": "abc1", "title": "A post", "url": url, "permalink": permalink, "author": "a",
        "subreddit": "python", "created_utc": 1370000000, "score": 1, "ups": 1, "downs": 0,
        "num_comments": 0, "is_self": False, "selftext": "", "domain": "example.com",
        "topics": [], "tags": [],
    }  # fmt: skip


def links_of(page: str) -> dict[str, str]:
    """Return {link text: href} of a page's links."""
    import html
    import re

    return {
        html.unescape(re.sub(r"<[^>]+>", "", text)).strip(): html.unescape(href)
        for href, text in re.findall(r'<a href="([^"]*)"[^>]*>(.*?)</a>', page, re.S)
    }


def render_post_page(stage_name: str, post: dict) -> str:
    """Render a stage's post page for a stored post, in its front door app (Flask or Quart)."""
    import asyncio

    from tooling.stages import get_stage

    stage = get_stage(stage_name)
    config = {"TESTING": True, "SEED_SAMPLE": False, "DATABASE_NAME": "test-post-page"}
    app = stage.load(stage.processes()[0].package).create_app(config)
    if not asyncio.iscoroutinefunction(app.make_response):  # Flask
        with app.test_request_context("/posts/abc1"):
            app.preprocess_request()
            return app.jinja_env.get_template("post.html").render(post=post, my_tags=[])

    async def quart_page() -> str:
        from quart import render_template

        async with app.test_request_context("/posts/abc1"):
            await app.preprocess_request()
            return await render_template("post.html", post=post, my_tags=[])

    return asyncio.run(quart_page())


FRONT_DOORS = ["01-monolith", "04-async"]  # Flask's and Quart's wiring of the templates


@pytest.mark.parametrize("stage_name", FRONT_DOORS)
@pytest.mark.parametrize("permalink", STORED_PERMALINKS)
def test_the_discussion_link_of_a_stored_post_stays_on_reddit(stage_name, permalink):
    from urllib.parse import urlsplit

    links = links_of(render_post_page(stage_name, stored_post(permalink)))
    discussion = links.get("View the discussion on reddit")
    assert discussion is None or urlsplit(discussion).hostname == "www.reddit.com", discussion


@pytest.mark.parametrize("stage_name", FRONT_DOORS)
def test_a_valid_permalink_links_to_its_discussion(stage_name):
    post = stored_post("/r/python/comments/abc1/a_post/")
    links = links_of(render_post_page(stage_name, post))
    assert links["View the discussion on reddit"] == (
        "https://www.reddit.com/r/python/comments/abc1/a_post/"
    )


@pytest.mark.parametrize("stage_name", FRONT_DOORS)
@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", " javascript:x"])
def test_a_stored_post_url_that_is_not_a_web_link_is_not_a_link(stage_name, url):
    page = render_post_page(stage_name, stored_post("/r/python/comments/abc1/", url=url))
    assert "A post" not in links_of(page)


@pytest.mark.parametrize("stage_name", ["03-services", "04-async"])
def test_an_app_without_pages_answers_its_errors_in_json(stage_name):
    """A service behind the gateway has no pages (and no page template's links): a path it
    does not know answers 404 in the contract's error shape, not a 500 from the template."""
    if stage_name == "03-services":
        from workshop.web import create_flask

        app = create_flask("a_service", {"TESTING": True})
        answer = app.test_client().get("/subscribers")
        status, body = answer.status_code, answer.get_json()
    else:
        web = get_stage(stage_name).load("chassis.web")
        app = web.create_quart("a_service", {"TESTING": True})

        async def fetch():
            answer = await app.test_client().get("/subscribers")
            return answer.status_code, await answer.get_json()

        status, body = asyncio.run(fetch())
    assert status == 404
    assert body["error"]["code"] == "not_found"
