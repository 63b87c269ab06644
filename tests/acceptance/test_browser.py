"""A person in a real (headless) chromium: register, search, tag, choose topics, log out."""

import os
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.timing import scaled

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Writes travel through a broker from stage 03 on: the contract gives them 2 seconds.
VISIBLE_WITHIN = 5.0
# Playwright's own limits (an expectation 5 s, an action or a page load 30 s), as deadlines:
# each waited for scaled (tests/timing.py), as every limit in the suite.
EXPECT_WITHIN = 5.0
ACTION_WITHIN = 30.0
expect.set_options(timeout=scaled(EXPECT_WITHIN) * 1000)


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        message = f"no chromium at {CHROMIUM}: install it or set CHROMIUM_PATH"
        if "CI" in os.environ:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, stage):
    """A fresh browser context (no cookies) per test, with the stage as base URL."""
    context = browser.new_context(base_url=stage.url)
    context.set_default_timeout(scaled(ACTION_WITHIN) * 1000)
    context.set_default_navigation_timeout(scaled(ACTION_WITHIN) * 1000)
    yield context.new_page()
    context.close()


def keep_trying(check: Callable[[], None], retry: Callable[[], object]) -> None:
    """Run check(), calling retry() between attempts, until it passes or time is up."""
    deadline = time.monotonic() + scaled(VISIBLE_WITHIN)
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            retry()


def signed_in_as(page: Page, username: str):
    return page.get_by_role("navigation", name="Account").get_by_text(f"Signed in as {username}")


def register_and_log_in(page: Page) -> str:
    username = f"browser_{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    page.goto("/")
    page.get_by_role("link", name="Register").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Register").click()
    # Registering logs the new user in and lands on the home page.
    expect(page.get_by_role("status")).to_have_text(f"Account created: welcome, {username}.")
    expect(signed_in_as(page, username)).to_be_visible()
    expect(page.get_by_role("heading", name="Find interesting posts")).to_be_visible()
    return username


def search_for(page: Page, query: str) -> None:
    box = page.get_by_role("main").get_by_role("searchbox", name="Search posts")
    box.fill(query)
    box.press("Enter")


def result_titles(page: Page):
    return page.get_by_role("article").get_by_role("heading", level=3)


def recommended_titles(page: Page, heading: str) -> list[str]:
    region = page.get_by_role("region", name=heading)
    expect(region.get_by_role("article")).to_have_count(12)
    return region.get_by_role("heading", level=3).all_inner_texts()


def test_a_person_searches_tags_and_chooses_topics(page, client):
    username = register_and_log_in(page)
    popular = recommended_titles(page, "Popular posts")

    # Search: the page shows the API's ranking, page by page.
    search_for(page, "asyncio")
    expected = client.get("/api/search", params={"q": "asyncio"}).json()
    expect(page.get_by_text(f"{expected['total']} results for “asyncio”")).to_be_visible()
    expect(result_titles(page)).to_have_text([p["title"] for p in expected["items"]])
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_text("Page 2 of")).to_be_visible()
    second = client.get("/api/search", params={"q": "asyncio", "page": 2}).json()["items"]
    expect(result_titles(page)).to_have_text([p["title"] for p in second])

    # Open a post and tag it.
    title = second[0]["title"]
    result_titles(page).first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(title)
    tag = f"t-{uuid.uuid4().hex[:10]}"
    page.get_by_label("Tag", exact=True).fill(tag)
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_role("status")).to_have_text(f"Tagged “{tag}”.")
    tag_link = page.get_by_role("link", name=f"#{tag}")
    keep_trying(lambda: expect(tag_link).to_be_visible(timeout=500), page.reload)

    # The tag's page lists the post. From stage 03 on the post's page shows the user's own
    # tag at once (read your own writes, from tag), and the tag's page is search's copy,
    # which gets it a moment later: a page loaded before that is read again.
    tag_link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Posts tagged “{tag}”")
    keep_trying(lambda: expect(page.get_by_role("article")).to_have_count(1, timeout=500),
                page.reload)  # fmt: skip
    expect(result_titles(page)).to_have_text([title])

    # Remove the tag again.
    result_titles(page).get_by_role("link").click()
    page.get_by_role("button", name=f"Remove tag {tag}").click()
    keep_trying(lambda: expect(tag_link).to_have_count(0, timeout=500), page.reload)

    # Choose a topic: the home page recommends posts about it.
    page.get_by_role("link", name="Preferences").click()
    page.get_by_label("testing", exact=True).check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_contain_text("Preferences saved")
    keep_trying(
        lambda: expect(page.get_by_role("heading", name="Recommended for you")).to_be_visible(
            timeout=500
        ),
        page.reload,
    )
    recommended = recommended_titles(page, "Recommended for you")
    assert recommended != popular
    region = page.get_by_role("region", name="Recommended for you")
    for article in region.get_by_role("article").all():
        expect(article.get_by_role("list", name="Topics")).to_contain_text("testing")

    # Log out.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    expect(signed_in_as(page, username)).to_have_count(0)


def test_pages_need_no_network_beyond_the_stage(page):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    register_and_log_in(page)
    search_for(page, "asyncio")
    result_titles(page).first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Tags")).to_be_visible()
    page.get_by_role("link", name="Preferences").click()
    expect(page.get_by_role("heading", name="Preferences")).to_be_visible()
    page.goto("/tags/python")
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    assert any(url.endswith(".css") for url in requested), requested
    elsewhere = [url for url in requested if urlsplit(url).hostname != "127.0.0.1"]
    assert elsewhere == []


def test_the_home_page_can_be_screenshot(page, tmp_path):
    page.goto("/")
    expect(page.get_by_role("heading", name="Find interesting posts")).to_be_visible()
    shot = tmp_path / "home.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 0
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
