"""A person whose page needs a backend that is down gets the HTML error page (503, what is
down, a link home), not the API's JSON; the page works again once the backend is back."""

import os

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from tests.acceptance.stage import eventually
from tests.acceptance.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.running import START_WITHIN
from tests.timing import scaled
from tooling.runner import StageRunner, free_base_port
from tooling.stages import get_stage

pytestmark = pytest.mark.browser

RECOVERY_WITHIN = 30.0


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM}: install it or set CHROMIUM_PATH")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def start(stage_name: str) -> StageRunner:
    stage = get_stage(stage_name)
    runner = StageRunner(
        stage, free_base_port(len(stage.processes())), {"WORKSHOP_SEED_SAMPLE": "1"}
    )
    runner.start()
    if not runner.wait_ready(scaled(START_WITHIN)):
        runner.stop()
        pytest.fail(f"{stage_name} did not become ready")
    return runner


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield context.new_page()
    context.close()


def expect_error_page(page: Page, url: str, what_is_down: str) -> None:
    answer = page.goto(url)
    assert answer is not None and answer.status == 503
    assert answer.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", level=1)).to_contain_text("503")
    expect(page.get_by_role("main")).to_contain_text(what_is_down)
    expect(page.get_by_role("main")).not_to_contain_text('"error"')
    expect(page.get_by_role("link", name="Back to the home page")).to_have_attribute("href", "/")


def page_status(url: str) -> int:
    return requests.get(url, timeout=scaled(10)).status_code


@pytest.mark.parametrize(
    ("stage_name", "backend", "what_is_down", "home_status"),
    [
        ("02-rest-api", "restapi", "REST API", 503),  # every page's data is behind the API
        ("03-services", "search", "search service", 200),  # home needs recommend and tag only
    ],
)
def test_a_page_whose_backend_is_down_shows_the_error_page_then_recovers(
    page, stage_name, backend, what_is_down, home_status
):
    runner = start(stage_name)
    try:
        front = f"http://127.0.0.1:{runner.port}"
        post_id = requests.get(
            f"{front}/api/search", params={"q": "flask"}, timeout=scaled(10)
        ).json()["items"][0]["id"]
        runner.stop_process(backend)

        expect_error_page(page, f"{front}/search?q=flask", what_is_down)
        expect_error_page(page, f"{front}/posts/{post_id}", what_is_down)
        assert page_status(f"{front}/") == home_status
        api = requests.get(f"{front}/api/search", params={"q": "flask"}, timeout=scaled(10))
        assert api.status_code == 503 and api.json()["error"]["code"] == "upstream_unavailable"

        runner.restart_process(backend)
        status = eventually(
            lambda: page_status(f"{front}/search?q=flask"), lambda s: s == 200, RECOVERY_WITHIN
        )
        assert status == 200
        page.goto(f"{front}/search?q=flask")
        expect(page.get_by_role("article").first).to_be_visible()
    finally:
        runner.stop()


def test_the_03_home_page_still_serves_without_recommend(page):
    runner = start("03-services")
    try:
        front = f"http://127.0.0.1:{runner.port}"
        runner.stop_process("recommend_v1")
        answer = page.goto(front)
        assert answer is not None and answer.status == 200
        notice = page.get_by_role("status")
        expect(notice).to_have_text("Recommendations are unavailable right now.")
        expect(page.get_by_role("heading", name="Popular tags")).to_be_visible()
    finally:
        runner.stop()
